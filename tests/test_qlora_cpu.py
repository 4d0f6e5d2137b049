"""Real 4-bit QLoRA end to end on bitsandbytes' CPU backend: NF4 base, fp32 adapter, training steps,
the adapter saved, and merged into the base (checked by logits: equal to the base plus the adapter up to
fp32 rounding, and to the trained 4-bit model within what NF4 storage of the base moves them; a planted wrong merge fails). The same path a T4 takes, with the precision the CPU plan
picks (fp32); tests/test_device.py checks the fp16 plan's dtypes."""
import json, math, shutil, tempfile
import pytest
import torch

DATA = dict(dpo=[dict(path='prefnb:toy-orca', type='chatml.intel')], orpo=[dict(path='prefnb:toy-orca', type='chatml.intel')])

@pytest.mark.parametrize('rl', ['dpo', 'orpo'])
def test_qlora_trains_saves_and_merges_on_cpu(rl, tmp_path):
    "About 20 s each on 2 CPU cores: the one place 4-bit weights really train in CI."
    import bitsandbytes as bnb
    from peft import PeftModel
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM
    from prefnb.config import load_config
    from prefnb.run import merge_adapter, train
    from prefnb.zoo import resolve_model
    cfg = load_config(dict(base_model='prefnb:tiny-chatml', rl=rl, adapter='qlora', lora_r=8, lora_alpha=16, datasets=DATA[rl],
                           sequence_len=128, micro_batch_size=2, gradient_accumulation_steps=1, max_steps=3, learning_rate=1e-2,
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
    # the merge, checked by logits as the tutorials do: the merged model against the adapter it came from
    tok = res.trainer.processing_class
    ids = tok(['<|im_start|>user\nWhat colour is the sea?<|im_end|>\n<|im_start|>assistant\n', 'The wind blows over the salt sea'],
              return_tensors='pt', padding=True)
    logits = lambda m: m.eval()(**ids).logits.float()
    fp32_base = lambda: AutoModelForCausalLM.from_pretrained(resolve_model('prefnb:tiny-chatml'), dtype=torch.float32)
    with torch.no_grad():
        trained = logits(model)                                                             # NF4 base + the trained adapter
        with model.disable_adapter(): nf4 = logits(model)
        base = logits(fp32_base())
        unmerged = logits(PeftModel.from_pretrained(fp32_base(), str(run)))                  # fp32 base + the saved adapter
    quant = (nf4 - base).abs().max().item()            # what 4-bit storage of the base alone moves the logits by
    bar = 2 * quant + 1e-4
    moved = (unmerged - base).abs().max().item()
    assert moved > bar, (moved, bar, 'the adapter moves the logits too little for the check to tell a wrong merge')
    def merge_error(run_dir, out):
        "Largest logit difference of the merged model from the fp32 base + adapter (exact up to fp32 rounding), and from the trained 4-bit model."
        with torch.no_grad(): m = logits(AutoModelForCausalLM.from_pretrained(merge_adapter(run_dir, out)))
        return (m - unmerged).abs().max().item(), (m - trained).abs().max().item()
    exact, vs_trained = merge_error(run, tmp_path/'merged')
    print(f'adapter moves logits {moved:.3f}; merged vs fp32 base + adapter {exact:.1e}; vs the trained NF4 model {vs_trained:.3f} (NF4 base alone: {quant:.3f})')
    assert exact < 1e-4 and vs_trained < bar, (exact, vs_trained, bar)
    for wrong in ('alpha-doubled', 'B-negated'):                                             # a planted wrong merge must fail
        bad = tmp_path/wrong; shutil.copytree(run, bad)
        if wrong == 'alpha-doubled':
            c = json.loads((bad/'adapter_config.json').read_text()); c['lora_alpha'] *= 2
            (bad/'adapter_config.json').write_text(json.dumps(c))
        else:
            w = load_file(str(bad/'adapter_model.safetensors'))
            save_file({k: -v if 'lora_B' in k else v for k, v in w.items()}, str(bad/'adapter_model.safetensors'))
        e, t = merge_error(bad, tmp_path/f'{wrong}-merged')
        assert e > 100 * 1e-4 and t > bar, (wrong, e, t, bar)
