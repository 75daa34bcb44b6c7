"""The math domain: ``domain`` (the plug-in), ``seeds`` and ``generator`` (seed tasks),
``tools`` (``python``), ``controllers`` (answer forcing), ``prompts``."""

from synthesizers.domains.math.domain import MathDomain

__all__ = ["MathDomain"]
