"""prefnb: preference tuning (DPO, IPO, KTO, ORPO, SimPO) on top of TRL, from a notebook.

The names a tutorial needs are here, one import line away (`from prefnb import load_config, train`).
Each is imported from its module on first use, so `import prefnb` stays instant: no torch, no
transformers until a function that needs them runs. The modules, in the order data flows:
core, templates, zoo, methods, memory, strategies, config, tokenizer, data, recommend, losses,
models, packing, chunked, trainer, health, plots, run, widgets, cli.
"""
__version__ = "0.1.0"
# This file is kept by hand (nbdev only updates __version__): every other module is generated from nbs/.

_API = {  # name: the module that defines it
    'UserError': 'core', 'env_info': 'core',
    'CHAT_TEMPLATES': 'templates',
    'toy_rows': 'zoo', 'toy_dataset': 'zoo', 'write_toy_file': 'zoo', 'resolve_model': 'zoo',
    'opens_warmly': 'zoo', 'share_with': 'zoo',
    'METHODS': 'methods', 'get_method': 'methods', 'method_table': 'methods',
    'plan_memory': 'memory',
    'load_config': 'config', 'check_config': 'config', 'read_config': 'config',
    'load_tokenizer': 'tokenizer',
    'prepare': 'data', 'preview': 'data',
    'select_method': 'recommend',
    'build_trainer': 'trainer',
    'diagnose': 'health', 'load_history': 'health', 'summary': 'health', 'rules_table': 'health',
    'plot_metrics': 'plots', 'plot_runs': 'plots',
    'train': 'run', 'merge_adapter': 'run', 'quiet_libraries': 'run', 'compare_generations': 'run', 'generate_answers': 'run',
    'quiet_run': 'run', 'generations_markdown': 'run', 'held_out_prompts': 'run',
    'config_form': 'widgets',
}
__all__ = sorted(_API)

def __getattr__(name):
    if name not in _API: raise AttributeError(f"module 'prefnb' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f'prefnb.{_API[name]}'), name)
    globals()[name] = value
    return value

def __dir__(): return sorted([*globals(), *_API])
