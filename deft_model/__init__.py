"""DEFT-LLM: disentangled expert feature tuning for micro-expression recognition.

Importing the package registers the model with the Auto classes (``AutoConfig``/``AutoModel`` for
``model_type == "deft"``), and a saved model carries ``auto_map`` and its code files, so that
``AutoModel.from_pretrained(RUN)`` works after ``import deft_model`` and ``AutoModel.from_pretrained(RUN,
trust_remote_code=True)`` works without it.
"""

__version__ = "0.1.0"

from transformers import AutoConfig, AutoModel  # noqa: E402

from .configuration import DeftConfig, load_config, reference_config, tiny_config  # noqa: E402
from .modeling import DeftModel  # noqa: E402

AutoConfig.register("deft", DeftConfig, exist_ok=True)
AutoModel.register(DeftConfig, DeftModel, exist_ok=True)

__all__ = ["DeftConfig", "DeftModel", "load_config", "reference_config", "tiny_config"]
