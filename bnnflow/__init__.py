"""bnnflow: from Brevitas quantization-aware training to a bit-exactly verified FINN-style accelerator."""

__version__ = "0.1.0"
