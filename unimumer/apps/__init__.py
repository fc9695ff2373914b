"""Applications: the web server and the offline demo."""
