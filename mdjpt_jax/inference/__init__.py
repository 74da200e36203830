"""Inference wing: embedding of recordings (and its scikit-learn transformer), the causal
stream decoder, the stream probe (file format, training) and the LSL runner."""
