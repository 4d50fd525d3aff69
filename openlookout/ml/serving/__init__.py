"""Serving a trained model (onnxruntime + numpy + Pillow, never torch): what Lambda and the edge
agent load."""
