"""What decides whether a run folder resumes (``pipelines.run.fingerprint``)."""

from __future__ import annotations


def test_endpoints_of_one_served_model_resume_whatever_the_list():
    from pipelines.config import RunConfig
    from pipelines.run import fingerprint

    def cfg(model):
        return RunConfig.model_validate({"domain": "math", "engine": {"model": model, "served_model": "org/m"}})

    two = fingerprint(cfg("http://a:8000/v1,http://b:8000/v1"))
    assert two == fingerprint(cfg("http://b:8000/v1,http://c:8000/v1,http://a:8000/v1"))
    assert fingerprint(cfg("http://a:8000/v1")) != two  # one URL keeps its old fingerprint (folders made before)
    other = cfg("http://a:8000/v1,http://b:8000/v1")
    other.engine.served_model = "org/other"
    assert fingerprint(other) != two
