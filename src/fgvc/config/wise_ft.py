"""The WiSE-FT engine's section (Wortsman et al., CVPR 2022): the mixing weights tried between a fine-tune
and the zero-shot model it started from; the one with the best val top-1 is kept."""

from __future__ import annotations

from pydantic import Field, field_validator

from fgvc.config.section import Section


class WiseFtConfig(Section):
    """train.engine: wise_ft: fine-tune from the zero-shot head, then average with the start."""

    alphas: list[float] = Field(default_factory=lambda: [round(0.1 * i, 1) for i in range(11)],
                                description="mixing weights (0: the zero-shot model, 1: the fine-tune); the one "
                                            "with the best val top-1 is kept (the paper: 0 to 1 in steps of 0.1)")

    @field_validator("alphas")
    @classmethod
    def _in_unit_interval(cls, alphas: list[float]) -> list[float]:
        bad = [a for a in alphas if not 0.0 <= a <= 1.0]
        if not alphas or bad:
            raise ValueError("every mixing weight must be in [0, 1]" + (f" (not {bad[0]})" if bad else ""))
        return sorted(set(alphas))
