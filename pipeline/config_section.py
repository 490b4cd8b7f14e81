"""The base of every config section: strict keys (a typo is an error, never a silent default),
validated on assignment. Each stage's section lives beside the stage (pipeline/extract/config.py,
pipeline/filter/config.py, pipeline/dedup/config.py, pipeline/tokens/config.py);
pipeline/config.py puts them together.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


# Fields are declarations (type, default, bounds, the source of the default), so they look alike by nature.
class Section(BaseModel):
    """Base of every config section: strict keys, validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
