import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
os.environ.setdefault('HF_HUB_DISABLE_TELEMETRY', '1')
os.environ.setdefault('TRL_EXPERIMENTAL_SILENCE', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')

import json
from pathlib import Path
import pytest
from _cli import heavy_after_import, run_cli

@pytest.fixture(scope='session')
def cli():
    "Run prefnb as a user does: `cli('check', path, timeout=600, env=None, cwd=None, module=False)` -> CompletedProcess (text)."
    return run_cli

@pytest.fixture(scope='session')
def heavy_imports():
    "`heavy_imports('prefnb.health', ...)`: the heavy libraries (torch, transformers, trl, datasets, matplotlib, ...) importing them loads."
    return heavy_after_import

@pytest.fixture
def trl_alone(tmp_path):
    """TRL's own trainer for the run's method (DPOTrainer, or the plain ORPOTrainer / CPOTrainer, full logits) built
    from what a prefnb run wrote (trl_args.json, and adapter_config.json for LoRA) and trained on the same prepared
    rows: `losses(cfg, run_dir, steps, lora=False)` gives its first logged losses (`logs=True`: the whole logged dicts)."""
    def losses(cfg, run_dir, steps, lora=False, logs=False):
        from importlib import import_module
        from prefnb.data import prepare
        from prefnb.tokenizer import load_tokenizer
        from prefnb.zoo import resolve_model
        (tm, tn), (cm, cn) = cfg.method.trainer, cfg.method.config
        Trainer, Config = getattr(import_module(tm), tn), getattr(import_module(cm), cn)
        d, fields = json.loads((Path(run_dir)/'trl_args.json').read_text()), Config.__dataclass_fields__
        args = Config(**{**{k: v for k, v in d.items() if k in fields and fields[k].init}, 'output_dir': str(tmp_path/'trl')})
        peft_config = None
        if lora:
            from peft import LoraConfig
            peft_config = LoraConfig.from_pretrained(str(run_dir))
            peft_config.base_model_name_or_path, peft_config.inference_mode = None, False   # a saved adapter's config says inference_mode: true
        tok = load_tokenizer(cfg)
        data = prepare(cfg, tok)
        tr = Trainer(model=resolve_model(cfg.base_model), args=args, train_dataset=data.train, eval_dataset=data.eval,
                        processing_class=tok, peft_config=peft_config)
        if args.train_sampling_strategy == 'group_by_length':   # TRL 1.16 cannot infer these rows' lengths: give them a length column
            length = lambda r: {'length': len(r['prompt_ids']) + max(len(r['chosen_ids']), len(r['rejected_ids'])) if 'prompt_ids' in r
                                else max(len(r['chosen_input_ids']), len(r['rejected_input_ids']))}
            tr.train_dataset = tr.train_dataset.map(length)
            if tr.eval_dataset is not None: tr.eval_dataset = tr.eval_dataset.map(length)
            tr._set_signature_columns_if_needed(); tr._signature_columns = [*tr._signature_columns, 'length']
        tr.train()
        logged = [h for h in tr.state.log_history if 'loss' in h][:steps]
        return logged if logs else [h['loss'] for h in logged]
    return losses
