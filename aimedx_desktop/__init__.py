"""AI-MEDX Desktop: offline MR↔CT synthesis with a CycleGAN, for research and teaching."""

__version__ = "0.1.0"

RESEARCH_USE_STATEMENT = (
    "For research and teaching use only. Synthetic images are not for diagnosis."
)
