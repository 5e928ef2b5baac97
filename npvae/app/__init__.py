"""What a user runs: the command line, run folders, checkpoints, data sets
and their file formats, figures and recipes."""
