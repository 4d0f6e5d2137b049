"axolotl configs as they are: one axolotl-style config per method carrying tracking, optimizer, scheduler, hub, early-stopping, attention, distributed, prepared-data and plugin options. Each is valid, each option lands on what TRL / transformers does with it, and plugin options are warnings, not errors."
import pytest, yaml
from prefnb.config import check_config, load_config
from prefnb.methods import METHODS
from prefnb.models import checked_plan
from prefnb.memory import gpu_facts
from prefnb.trainer import mapped_args, tracking, trl_config

CPU = dict(kind='cpu')
DATA = {'paired': dict(path='prefnb:toy-messages', type='chat_template.default'),
        'kto': dict(path='prefnb:toy-kto', type='chatml.prompt_pairs'),
        'orpo': dict(path='prefnb:toy-messages', type='chat_template.default')}

AXOLOTL_YAML = '''
base_model: prefnb:tiny-chatml
rl: {rl}
chat_template: qwen_25
datasets: [{data}]
val_set_size: 0.1
dataset_prepared_path: last_run_prepared
strict: false
flash_attention: true
adam_beta1: 0.85
adam_beta2: 0.95
adam_epsilon: 1.0e-7
lr_scheduler: cosine_with_restarts
lr_scheduler_kwargs: {{num_cycles: 2}}
early_stopping_patience: 3
eval_steps: 5
hub_model_id: me/run
hub_strategy: every_save
wandb_project: prefnb-tests
wandb_entity: me
wandb_name: run-1
wandb_watch: gradients
wandb_log_model: "false"
mlflow_experiment_name: prefs
use_swanlab: true
swanlab_project: prefnb-tests
use_scattermoe: true
use_sonicmoe: false
liger_rms_norm: true
liger_fused_linear_cross_entropy: true
'''

def axolotl_config(rl):
    fam = METHODS[rl].strategies[0] if rl not in ('kto', 'orpo') else rl
    return yaml.safe_load(AXOLOTL_YAML.format(rl=rl, data=yaml.safe_dump(DATA.get(fam, DATA['paired']), default_flow_style=True).strip()))

RLS = sorted(METHODS)

@pytest.mark.parametrize('rl', RLS)
def test_axolotl_config_is_valid_with_plugin_options_as_warnings(rl):
    r = check_config(axolotl_config(rl))
    assert r.errors == []
    assert sorted(p.message for p in r.warnings) == sorted([
        'axolotl kernels plugin options, which prefnb does not use (it loads no axolotl plugins): use_scattermoe, use_sonicmoe',
        'axolotl liger plugin options, which prefnb does not use (it loads no axolotl plugins): liger_rms_norm, liger_fused_linear_cross_entropy',
        'axolotl swanlab plugin options, which prefnb does not use (it loads no axolotl plugins): use_swanlab, swanlab_project (for SwanLab tracking here, set report_to: [swanlab])',
        'ignored axolotl options (a preference run in prefnb does not use them): strict'])
    assert not any('neither prefnb nor axolotl' in p.message for p in r.errors + r.warnings)

@pytest.mark.parametrize('rl', RLS)
def test_axolotl_options_reach_the_trl_config(rl):
    cfg = load_config(axolotl_config(rl))
    args = trl_config(cfg, checked_plan(cfg, gpu_facts('cpu')), has_eval=True)
    got = (args.adam_beta1, args.adam_beta2, args.adam_epsilon, args.lr_scheduler_kwargs, str(args.hub_strategy.value),
           args.load_best_model_at_end, args.metric_for_best_model, args.greater_is_better, str(args.save_strategy.value), args.save_steps,
           args.eval_steps, sorted(args.report_to), args.run_name)
    assert got == (0.85, 0.95, 1e-7, {'num_cycles': 2}, 'every_save', True, 'eval_loss', False, 'steps', 5, 5, ['mlflow', 'wandb'], 'run-1')
    assert cfg.attn_implementation == 'flash_attention_2' and cfg.dataset_prepared_path == 'last_run_prepared'
    assert tracking(cfg)['env'] == {'WANDB_PROJECT': 'prefnb-tests', 'WANDB_ENTITY': 'me', 'WANDB_WATCH': 'gradients',
                                    'WANDB_LOG_MODEL': 'false', 'MLFLOW_EXPERIMENT_NAME': 'prefs'}

def test_distributed_options_pass_through_unchanged():
    # DeepSpeed and FSDP are checked by transformers itself when the arguments are built (DeepSpeed needs its package): test the mapping
    cfg = load_config(dict(axolotl_config('dpo'), deepspeed='deepspeed_configs/zero2.json', fsdp=['full_shard', 'auto_wrap'],
                           fsdp_config={'fsdp_transformer_layer_cls_to_wrap': 'Qwen2DecoderLayer'}))
    a = mapped_args(cfg, dict(eval_strategy='steps', eval_steps=5))
    assert (a['deepspeed'], a['fsdp'], a['fsdp_config']) == ('deepspeed_configs/zero2.json', ['full_shard', 'auto_wrap'],
                                                             {'fsdp_transformer_layer_cls_to_wrap': 'Qwen2DecoderLayer'})

def test_without_eval_early_stopping_is_an_error_not_a_silent_no_op():
    c = axolotl_config('dpo'); c.pop('val_set_size')
    assert [p.rule for p in check_config(c).errors] == ['early-stopping-eval']

def test_options_that_stay_ignored_are_the_documented_ones():
    "The keys a preference run has no use for are warned once, by name; tracking and the other mapped keys are not among them."
    c = dict(axolotl_config('dpo'), pad_to_sequence_len=True, model_type='AutoModelForCausalLM')
    (w,) = [p for p in check_config(c).warnings if p.rule == 'axolotl-key-unused']
    assert w.message == 'ignored axolotl options (a preference run in prefnb does not use them): strict, pad_to_sequence_len, model_type'
