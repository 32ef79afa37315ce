"""Models: towers (a modality's preprocessing + an encoder) feeding registered heads.

    model = create_model(model_config)       # ModelConfig or plain data
    model = load_model("runs/contrastive")   # rebuilt from the checkpoint alone
"""

from avkit.models.checkpoint import Checkpoint, load_checkpoint, resolve_checkpoint, save_checkpoint
from avkit.models.config import InitConfig, ModelConfig, TowerConfig
from avkit.models.encoders import (
           EncoderOutput,
           FeatureInfo,
           FeatureMap,
           create_encoder,
           list_encoders,
)
from avkit.models.factory import create_model, load_model, model_config, model_from_checkpoint
from avkit.models.heads import Head, HeadContext, list_heads, register_head
from avkit.models.model import AVModel
from avkit.models.tower import Tower

__all__ = ["AVModel", "Checkpoint", "EncoderOutput", "FeatureInfo", "FeatureMap", "Head", "HeadContext",
           "InitConfig", "ModelConfig", "Tower", "TowerConfig", "create_encoder", "create_model", "list_encoders",
           "list_heads", "load_checkpoint", "load_model", "model_config", "model_from_checkpoint", "register_head",
           "resolve_checkpoint", "save_checkpoint"]  # fmt: skip
