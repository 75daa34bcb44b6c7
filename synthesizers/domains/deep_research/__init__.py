"""Deep research: multi-hop questions answered by searching a local corpus (or an
external search API with the same schema) and citing the evidence."""

from synthesizers.domains.deep_research.domain import DeepResearchDomain

__all__ = ["DeepResearchDomain"]
