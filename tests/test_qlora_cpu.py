"""Real 4-bit QLoRA end to end on bitsandbytes' CPU backend: NF4 base, fp32 adapter, training steps,
the adapter saved, and merged into the base. The same path a T4 takes, with the precision the CPU plan
picks (fp32); tests/test_device.py checks the fp16 plan's dtypes."""
import math, tempfile
import pytest
import torch

pytest.importorskip('bitsandbytes')

DATA = dict(dpo=[dict(path='prefnb:toy-orca', type='chatml.intel')], orpo=[dict(path='prefnb:toy-orca', type='chatml.intel')])

@pytest.mark.parametrize('rl', ['dpo', 'orpo'])
def test_qlora_trains_saves_and_merges_on_cpu(rl, tmp_path):
    "About 20 s each on 2 CPU cores: the one place 4-bit weights really train in CI."
    import bitsandbytes as bnb
    from transformers import AutoModelForCausalLM
    from prefnb.config import load_config
    from prefnb.run import merge_adapter, train
    from prefnb.zoo import resolve_model
    cfg = load_config(dict(base_model='prefnb:tiny-chatml', rl=rl, adapter='qlora', lora_r=8, lora_alpha=16, datasets=DATA[rl],
                           sequence_len=128, micro_batch_size=2, gradient_accumulation_steps=1, max_steps=3, learning_rate=5e-3,
                           warmup_ratio=0, logging_steps=1, live_plots=False, health_checks=False, output_dir=str(tmp_path/'run')))
    res = train(cfg)
    model = res.trainer.model
    assert res.trainer.prefnb['precision']['weight_dtype'] == 'nf4'
    four = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert four and all(m.weight.dtype == torch.uint8 for m in four)                    # the base really is 4-bit
    trainable = {n: p.dtype for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and set(trainable.values()) == {torch.float32} and all('lora_' in n for n in trainable), trainable
    losses = [h['loss'] for h in res.history if 'loss' in h]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses), losses
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if 'lora_B' in n)  # B starts at zero: it was updated
    run = res.run_dir
    assert (run/'adapter_config.json').exists() and (run/'adapter_model.safetensors').exists()
    merged = AutoModelForCausalLM.from_pretrained(merge_adapter(run, tmp_path/'merged'))
    base = AutoModelForCausalLM.from_pretrained(resolve_model('prefnb:tiny-chatml'))
    diffs = [(a - b).abs().max().item() for (n, a), (_, b) in zip(merged.named_parameters(), base.named_parameters()) if a.shape == b.shape]
    assert max(diffs) > 0 and all(math.isfinite(d) for d in diffs)                        # the adapter is in the merged weights
    ids = torch.tensor([[1, 2, 3, 4]])
    assert torch.isfinite(merged(input_ids=ids).logits).all()
