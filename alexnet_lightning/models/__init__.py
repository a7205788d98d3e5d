from alexnet_lightning.models.alexnet import AlexNet, build_alexnet

__all__ = ["AlexNet", "build_alexnet"]
