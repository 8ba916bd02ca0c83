"""One module per stage of the study; each asset reads its inputs, calls compute/, returns a frame."""
