"""The code domain: repo-level bug fixing on real Python projects and function-level tasks cut from them.

Construction (offline, SWE-smith style): ``projects`` (pinned sdists) ->
``images`` (per-project sandbox images with test deps) -> ``baseline`` (the
suite twice; passing, non-flaky tests) -> ``mutate`` (AST bugs) ->
``instances`` (keep bugs with >= 1 FAIL_TO_PASS and >= 1 PASS_TO_PASS; Parquet).
Rollouts: ``domain.CodeDomain`` with the ``tools`` bash/view/edit/submit. A small model's
rollouts are guided (``controllers``): repo-level turns follow ``repo_turns`` (reproduce, a traceback
frame or, with none, the functions the failing test ran by ``trace_calls``; an edit into one of a
shown line's single-token ``repairs``; check; submit, or undo and try the next), each turn narrowed
to what the rollout has seen (``localize``).
"""
