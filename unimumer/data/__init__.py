"""Data building: records, prompt files, training sets, MathNet, released data, dataset registry."""
