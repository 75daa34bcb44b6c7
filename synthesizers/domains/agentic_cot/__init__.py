"""The Agentic-CoT domain: ``domain`` (the plug-in over other domains' tasks), ``seeds``
(rewrite material: plain-CoT rows and stored trajectories), ``tools`` (the underlying
domain's), ``controllers`` (phase-by-phase generation), ``prompts`` (format and rewrite
prompts). The format itself (phases, parser, structure check) is a contract shared with the
verifier and lives in ``schemas.agentic_cot``."""

from synthesizers.domains.agentic_cot.domain import AgenticCoTDomain

__all__ = ["AgenticCoTDomain"]
