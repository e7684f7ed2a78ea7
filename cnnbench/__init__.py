"""cnnbench: what a convolutional network costs, measured and explained."""

__version__ = "0.1.0"
