"The selector's reasons are true: every memory claim `prefnb select` makes is the planner's figure (`plan_memory`) for that exact method and adapter, over model sizes and GPUs."
import re
import pytest
from prefnb.memory import GPUS, gpu_memory, plan_memory
from prefnb.methods import METHODS
from prefnb.recommend import ADAPTERS, select_method, select_cli

SIZES = [0.5e9, 1.5e9, 3e9, 7e9, 8e9, 13e9, 34e9, 70e9]
PLACES = [*GPUS, 24.0, None]          # every named GPU, a GPU given in GiB, and no GPU (a CPU): no memory claim at all
KW = dict(sequence_len=1024, micro_batch_size=2)
LABEL = {v: k for k, v in ADAPTERS.items()}
TITLE = {m.title: m.name for m in METHODS.values()}
CLAIM = re.compile(r'(full fine-tuning|LoRA|QLoRA) ~([\d.]+) GiB (fits|does not fit)')


def claims_in(reason):
    "(method, adapter, GiB, fits) for every memory claim a reason makes."
    if m := re.match(r'(\w+) on [^:]+: (.*)$', reason):
        return [(TITLE[m[1]], LABEL[a], float(g), v == 'fits') for a, g, v in CLAIM.findall(m[2])]
    if m := re.match(r'(\w+) with (full fine-tuning|LoRA|QLoRA) needs ~([\d.]+) GiB and (fits|still does not fit)', reason):
        return [(TITLE[m[1]], LABEL[m[2]], float(m[3]), m[4] == 'fits')]
    assert 'fit' not in reason and 'GiB' not in reason, f'a memory claim the test cannot read: {reason!r}'
    return []

@pytest.mark.parametrize('gpu', PLACES, ids=str)
@pytest.mark.parametrize('size', SIZES, ids=lambda s: f'{s/1e9:g}B')
@pytest.mark.parametrize('data', ['paired', 'unpaired'])
def test_every_memory_claim_is_the_planners_figure(data, size, gpu):
    s = select_method(data, model=size, gpu=gpu, **KW)
    plan = lambda method, adapter: plan_memory(size, method, adapter=adapter, gpu=gpu, advise=False, **KW)
    said = [c for r in s.reasons for c in claims_in(r)]
    if gpu is None: assert said == [] and all(a['fits'] is None for a in s.alternatives)
    for method, adapter, gib, fits in said:
        p = plan(method, adapter)
        assert fits == p.fits and abs(gib - p.total_gib) <= 0.05, (method, adapter, gib, p.total_gib)   # the figure as shown, to 0.1 GiB
    if gpu is not None and data == 'paired':   # DPO's verdict for every adapter is stated, and decides memory_limited
        dpo = [c for c in said if c[0] == 'dpo' and c[2] is not None]
        assert {c[1] for c in dpo} == set(ADAPTERS)
        assert (s.method in ('orpo', 'simpo')) == (not any(plan('dpo', a).fits for a in ADAPTERS))
    if gpu is not None:                        # the adapter suggested is the lightest whose plan fits, else QLoRA (and said not to fit)
        fitting = [a for a in ADAPTERS if plan(s.method, a).fits]
        assert s.settings['adapter'] == (fitting[0] if fitting else 'qlora')
        assert (s.method, s.settings['adapter'], bool(fitting)) in {(m, a, f) for m, a, _, f in said}
    for alt in s.alternatives:                  # each alternative's figure is its plan with the suggested adapter
        p = plan(alt['method'], s.settings['adapter'])
        assert (alt['memory_gib'], alt['fits']) == (round(p.total_gib, 2), p.fits)
    for c in s.memory:
        p = plan(c['method'], c['adapter'])
        assert (c['gib'], c['fits']) == (p.total_gib, p.fits)

@pytest.mark.parametrize('gpu', [g for g in GPUS if GPUS[g][0] <= 16], ids=str)
@pytest.mark.parametrize('size', [s for s in SIZES if s >= 7e9], ids=lambda s: f'{s/1e9:g}B')
def test_full_fine_tuning_of_7b_and_up_is_never_said_to_fit_16_gb(size, gpu):
    "From first principles, not from the planner: full fine-tuning keeps fp32 weights (4 bytes a parameter), over 26 GiB for 7B."
    assert size * 4 / 2**30 > gpu_memory(gpu)[1]
    s = select_method('paired', model=size, gpu=gpu, **KW)
    said = [c for r in s.reasons for c in claims_in(r)]
    assert ('dpo', None, False) in {(m, a, f) for m, a, _, f in said}
    assert not any(a is None and f for _, a, _, f in said) and s.settings['adapter'] != None

def test_cli_prints_the_same_claims(capsys):
    "`prefnb select --data paired --params 7e9 --gpu T4`, the issue 25 command: its lines are select_method's reasons, alternatives marked by their plans."
    assert select_cli(['--data', 'paired', '--params', '7e9', '--gpu', 'T4']) == 0
    out = capsys.readouterr().out
    s = select_method('paired', model=7e9, gpu='T4')
    assert [l.removeprefix('  because ') for l in out.splitlines() if l.startswith('  because ')] == s.reasons
    assert 'full fine-tuning ~' in s.reasons[0] and 'full fine-tuning ~' + s.reasons[0].split('full fine-tuning ~')[1].split(',')[0] in out
    for alt in s.alternatives:
        line = next(l for l in out.splitlines() if l.startswith(f"  {alt['method']} ~"))
        assert line.startswith(f"  {alt['method']} ~{alt['memory_gib']} GiB") and ('(does not fit)' in line) == (alt['fits'] is False)
