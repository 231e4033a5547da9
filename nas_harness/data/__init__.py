"""Proxy datasets: Fashion-MNIST, CIFAR-10/100, ImageFolder trees and a synthetic test set.

``load_proxy(ProxyConfig(...))`` is the entry point used by trials; the per-format loaders return a
:class:`RawDataset` and are public for tools and tests.
"""

from nas_harness.data._raw import RawDataset
from nas_harness.data.cifar import load_cifar, safe_unpickle
from nas_harness.data.fashion_mnist import download_fashion_mnist, find_fashion_mnist, load_fashion_mnist
from nas_harness.data.folder import load_image_folder
from nas_harness.data.proxy import DATASETS, ProxyConfig, ProxyData, clear_cache, content_fingerprint, load_proxy
from nas_harness.data.synthetic import make_synthetic

__all__ = [
    "DATASETS",
    "ProxyConfig",
    "ProxyData",
    "RawDataset",
    "clear_cache",
    "content_fingerprint",
    "download_fashion_mnist",
    "find_fashion_mnist",
    "load_cifar",
    "load_fashion_mnist",
    "load_image_folder",
    "load_proxy",
    "make_synthetic",
    "safe_unpickle",
]
