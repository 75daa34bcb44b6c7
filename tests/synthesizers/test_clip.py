from synthesizers.clip import clip, clip_within


def test_clip_keeps_head_and_tail_and_says_how_much_was_cut():
    text = "H" * 600 + "M" * 1000 + "T" * 400
    out = clip(text + "\n\n", 900)
    assert out.startswith("H" * 600) and out.endswith("T" * 300)
    assert "[... 1100 characters cut ...]" in out
    assert clip("short\n", 900) == "short"


def test_clip_within_is_a_hard_cap():
    for n in (51, 500, 50_000):
        out = clip_within("x" * (n - 4) + "TAIL", 50)
        assert len(out) <= 50 and out.endswith("TAIL") and "characters cut" in out
    assert clip_within("short", 100) == "short"
    assert len(clip_within("y" * 100, 10)) == 10  # no room for the marker: a plain cut
