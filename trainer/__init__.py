"""trainer — mid-training on trajforge shards.

A DeepSeek-V3-style Multi-head Latent Attention model, a fused Triton MLA
attention kernel (forward and backward) with a pure-torch reference, a shard
loader that packs documents (no cross-document attention), and a resumable
training loop. Reads shards through ``schemas`` only; never imports ``pipelines``.
"""
