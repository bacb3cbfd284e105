"""Load DIET's and TED's TensorFlow models for prediction without tracing a training step.

Rasa 3.6 loads each of its TensorFlow models (``RasaModel.load``) by building
it, compiling it with an Adam optimizer and *training it on one example* so
that every weight exists, then reading the saved weights over them and
predicting once. That one training step traces the whole training graph
(losses, gradients, the optimizer's update ops) and keeps it: on this
assistant's model it is about 570 MB of the Rasa process's memory and most of
its start-up time (DIET's ``fit`` alone took 105 s of a 114 s load on the
shared development machine), for a graph a server never runs again.

:func:`load_for_prediction` builds the same model, reads the saved weights
first and then predicts once: the layers create their weights on that first
call and TensorFlow's checkpoint restores each saved value as its weight is
created ("delayed restoration"). The optimizer's saved slots are not read.
The weights, and so every prediction, are the ones Rasa's own load gives
(``tests/bot/test_model_loading.py`` compares them). Fine-tuning (``rasa train
--finetune``) needs the optimizer and the training graph: it keeps Rasa's load.

:func:`install` puts it in place of ``RasaModel.load``; ``python -m
bot.rasa_run`` (how the launcher starts Rasa) calls it before Rasa starts.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

# Rasa's own ``RasaModel.load`` (a classmethod object), kept for fine-tuning.
_ORIGINAL: Any = None


def load_for_prediction(
    cls: Any,
    model_file_name: str,
    model_data_example: Any,
    predict_data_example: Any = None,
    finetune_mode: bool = False,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """``RasaModel.load`` for serving: weights read on creation, no training step traced."""
    if finetune_mode or predict_data_example is None:
        return _rasa_load(cls, model_file_name, model_data_example, predict_data_example, finetune_mode,
                          *args, **kwargs)
    model = cls(*args, **kwargs)
    # Weights not created yet are restored as the first prediction creates them; the
    # optimizer's slots (saved for training) and training-only layers are left unread.
    model.load_weights(model_file_name).expect_partial()
    model.run_inference(predict_data_example)
    logger.debug("model_loading.loaded_for_prediction", extra={"model": cls.__name__})
    return model


def _rasa_load(cls: Any, *args: Any, **kwargs: Any) -> Any:
    return _ORIGINAL.__func__(cls, *args, **kwargs)


def install() -> None:
    """Replace ``RasaModel.load`` (idempotent); call before Rasa loads a model."""
    global _ORIGINAL
    if _ORIGINAL is not None:
        return
    from rasa.utils.tensorflow.models import RasaModel

    _ORIGINAL = RasaModel.__dict__["load"]
    RasaModel.load = classmethod(load_for_prediction)  # type: ignore[method-assign,assignment]
