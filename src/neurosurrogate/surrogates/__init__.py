"""Surrogates (neural networks standing in for simulators) and the shared trainer."""

from .recurrent_map import RecurrentMap as RecurrentMap
from .recurrent_map import load_map as load_map
from .recurrent_map import save_map as save_map
from .training import TrainConfig as TrainConfig
from .training import TrainResult as TrainResult
from .training import mse_loss as mse_loss
from .training import train as train
