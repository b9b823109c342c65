"""Training stage: the Brevitas BNN model zoo, data loaders, quantization-aware training and QONNX export."""
