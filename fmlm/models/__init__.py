"""Model folders (hub style) and the paper's released checkpoints.

``load_model(path_or_repo_id)`` / ``save_model(model, folder, info)``: the one model format, for
imported and self-trained models alike (``fmlm.models.folder``); ``import_checkpoint`` reads a
reference Lightning checkpoint (``fmlm.models.reference``); ``fmlm.experiment.export`` writes one from a
trained stage; ``sample_texts`` samples text from a loaded folder.
"""

from fmlm.models.convert import import_checkpoint
from fmlm.models.folder import ModelInfo, PretrainedModel, load_model, read_info, save_model
from fmlm.models.sample import sample_texts

__all__ = ["ModelInfo", "PretrainedModel", "import_checkpoint", "load_model", "read_info",
           "sample_texts", "save_model"]
