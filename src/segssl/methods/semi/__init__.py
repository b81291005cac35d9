"""Semi-supervised methods; importing this package registers them."""

from segssl.methods.semi import (  # noqa: F401  (registers the methods)
    ael,
    cct,
    classmix,
    cps,
    cutmix,
    fixmatch,
    gct,
    mean_teacher,
    pi_model,
    pseudo_label,
    self_correcting,
    temporal_ensembling,
    unimatch,
    zhao_contrastive,
)
