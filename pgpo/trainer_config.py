"""PGPOConfig: TRL's SDPOConfig plus PGPO's settings as one field."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")   # TRL is pinned (pyproject.toml): its experimental warning is noise
from trl.experimental.sdpo import SDPOConfig  # noqa: E402

from pgpo.settings import PGPOSettings


@dataclass
class PGPOConfig(SDPOConfig):
    """SDPOConfig plus `pgpo`, PGPO's settings as one object (pgpo.settings.PGPOSettings; a mapping of its
    fields is accepted). `pgpo.alpha = 0` (and `pgpo.beta = 0`) is plain SDPO."""

    pgpo: PGPOSettings = field(default_factory=PGPOSettings, metadata={"help": "PGPO's settings."})

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.pgpo, dict):
            self.pgpo = PGPOSettings(**self.pgpo)
        self.pgpo.validate()
        if not self.pgpo.is_sdpo and self.distillation_weight == 0:
            raise ValueError("pgpo.alpha / pgpo.beta > 0 needs a distillation term (distillation_weight > 0) to "
                             "measure I_k")
        if not self.pgpo.is_sdpo and self.use_teacher_server:
            raise ValueError("PGPO needs the teacher's logits in the trainer; use_teacher_server is not supported")

    def to_dict(self):
        d = super().to_dict()
        d["pgpo"] = dataclasses.asdict(self.pgpo)
        return d
