"""Error-driven learning: marking a prediction against its gt and the error_find / error_fix datasets
(:mod:`~unimumer.edl.marking`), and the cross-fold error corpus (:mod:`~unimumer.edl.corpus`)."""
