"Every strategy name of the spec (shared/spec/strategies.md), with its exact output strings on a real-schema row."
import pytest
from prefnb.core import UserError
from prefnb import strategies as S
from prefnb.zoo import toy_rows, resolve_model

# The templates written out literally (not through prefnb.strategies.TEMPLATES) so the tests can fail.
CHATML_SYS = '<|im_start|>system\n{S}<|im_end|>\n<|im_start|>user\n{P}<|im_end|>\n<|im_start|>assistant\n'
CHATML = '<|im_start|>user\n{P}<|im_end|>\n<|im_start|>assistant\n'
LLAMA_SYS = ('<|start_header_id|>system<|end_header_id|>\n\n{S}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n{P}<|eot_id|>'
             '<|start_header_id|>assistant<|end_header_id|>\n\n')
LLAMA = '<|start_header_id|>user<|end_header_id|>\n\n{P}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n'
END = {'chatml': '<|im_end|>', 'llama3': '<|eot_id|>'}

def prompt(fam, P, S_=None):
    if S_: return (CHATML_SYS if fam == 'chatml' else LLAMA_SYS).format(S=S_, P=P)
    return (CHATML if fam == 'chatml' else LLAMA).format(P=P)

def orca(): return toy_rows('orca', 1)[0] | {'system': 'You are a helpful assistant.'}

# (strategy suffix, row, P, S, C, R): rows in the layout of the public dataset each strategy is named after
def paired_cases():
    o, uf, ac = orca(), toy_rows('ultrafeedback', 1)[0], toy_rows('argilla_chat', 1)[0]
    ufb = {'prompt': 'Hi', 'chosen_response': 'Hello!', 'rejected_response': 'Go.', 'system': 'Sys'}
    icr = {'input': o['question'], 'chosen': o['chosen'], 'rejected': o['rejected'], 'system': o['system']}
    return [
        ('default', ufb, 'Hi', 'Sys', 'Hello!', 'Go.'),
        ('argilla', ufb, 'Hi', 'Sys', 'Hello!', 'Go.'),                 # alias of .default (raises upstream)
        ('default', {'instruction': 'I', 'chosen': 'C', 'rejected': 'R'}, 'I', None, 'C', 'R'),
        ('argilla_chat', ac, ac['chosen'][0]['content'], None, ac['chosen'][1]['content'], ac['rejected'][1]['content']),
        ('icr', icr, o['question'], o['system'], o['chosen'], o['rejected']),
        ('intel', o, o['question'], o['system'], o['chosen'], o['rejected']),
        ('intel', {**o, 'system': ''}, o['question'], None, o['chosen'], o['rejected']),
        ('prompt_pairs', toy_rows('pairs', 1)[0], toy_rows('pairs', 1)[0]['prompt'], None, toy_rows('pairs', 1)[0]['chosen'], toy_rows('pairs', 1)[0]['rejected']),
        ('ultra', uf, uf['prompt'], None, uf['chosen'][1]['content'], uf['rejected'][1]['content']),
    ]

@pytest.mark.parametrize('rl', ['dpo', 'ipo', 'simpo', 'orpo'])
@pytest.mark.parametrize('fam', ['chatml', 'llama3'])
@pytest.mark.parametrize('case', range(9))
def test_paired_families(fam, rl, case):
    x, row, P, S_, C, R = paired_cases()[case]
    assert S.load(f'{fam}.{x}', rl=rl)(row) == dict(prompt=prompt(fam, P, S_), chosen=C + END[fam], rejected=R + END[fam])

def test_no_dot_means_default():
    row = {'question': 'Q', 'chosen': 'C', 'rejected': 'R'}
    assert S.resolve_name('chatml') == 'chatml.default' and S.resolve_name('llama3', 'orpo') == 'llama3.default'
    assert S.load('llama3')(row) == dict(prompt=LLAMA.format(P='Q'), chosen='C<|eot_id|>', rejected='R<|eot_id|>')

def test_llama3_has_no_begin_of_text():
    assert '<|begin_of_text|>' not in S.load('llama3.intel')(orca())['prompt']

def test_zephyr_nectar_best_rank_is_chosen():
    row = toy_rows('nectar', 1)[0]
    ranked = sorted(row['answers'], key=lambda a: a['rank'])
    assert ranked[0]['rank'] == 1.0
    out = S.load('zephyr.nectar')(row)
    assert out == dict(prompt=f"<|system|>\n</s>\n<|user|>\n{row['prompt']}</s>\n<|assistant|>\n",
                       chosen=ranked[0]['answer'], rejected=ranked[1]['answer'])
    # the reference picks the two highest rank numbers (the worst answers); we must not
    assert out['chosen'] != max(row['answers'], key=lambda a: a['rank'])['answer']

def test_passthrough():
    r = toy_rows('pairs', 1)[0]
    assert S.load('passthrough')({**r, 'extra': 3}) == r
    k = toy_rows('kto', 1)[0]
    assert S.load('passthrough', rl='kto')(k) == k
    with pytest.raises(UserError, match="column 'label': found str 'yes', expected a boolean true/false"):
        S.load('passthrough', rl='kto')({**k, 'label': 'yes'})

def test_user_defined_with_and_without_system():
    t = dict(field_prompt='question', prompt_format='<s>[SYS]{system}[/SYS] {prompt}', chosen_format='{chosen}</s>', rejected_format='{rejected}</s>')
    o = orca()
    assert S.load(t)(o) == dict(prompt=f"<s>[SYS]{o['system']}[/SYS] {o['question']}", chosen=o['chosen'] + '</s>', rejected=o['rejected'] + '</s>')
    no_sys = {k: v for k, v in o.items() if k != 'system'}
    assert S.load(t)(no_sys)['prompt'] == f"<s>[SYS][/SYS] {o['question']}"
    assert S.resolve_name(t) == 'user_defined.default'
    assert S.load({})(toy_rows('pairs', 1)[0]) == toy_rows('pairs', 1)[0]

def test_user_defined_unknown_option_and_placeholder():
    with pytest.raises(UserError, match=r"type 'user_defined.default': unknown option\(s\) \['field_answer'\]"):
        S.load({'field_answer': 'a'})
    with pytest.raises(UserError, match=r"type.chosen_format: '\{answer\}' cannot be filled"):
        S.load({'chosen_format': '{answer}'})(toy_rows('pairs', 1)[0])

# ---- KTO
def kto_cases():
    k = toy_rows('kto', 1)[0]
    return [
        ('argilla', {'system': 'S', 'instruction': 'I', 'completion': 'X', 'label': True}, 'I', 'S', 'X', True),
        ('argilla_chat', {'completion': [{'role': 'user', 'content': 'U'}, {'role': 'assistant', 'content': 'A'}], 'label': False}, 'U', None, 'A', False),
        ('intel', {'system': 'S', 'question': 'Q', 'completion': 'X', 'label': False}, 'Q', 'S', 'X', False),
        ('prompt_pairs', k, k['prompt'], None, k['completion'], k['label']),
        ('ultra', {'system': None, 'prompt': 'P', 'completion': 'X', 'label': True}, 'P', None, 'X', True),
    ]

@pytest.mark.parametrize('fam', ['chatml', 'llama3'])
@pytest.mark.parametrize('case', range(5))
def test_kto_families(fam, case):
    x, row, P, S_, X, L = kto_cases()[case]
    out = S.load(f'{fam}.{x}', rl='kto')(row)
    assert out == dict(prompt=prompt(fam, P, S_), completion=X + END[fam], label=L) and type(out['label']) is bool

def test_kto_user_defined_system_missing_is_empty():
    t = dict(field_prompt='q', field_completion='a', field_label='ok', prompt_format='{system}|{prompt}', completion_format='{completion}!')
    assert S.load(t, rl='kto')(dict(q='Q', a='A', ok=True)) == dict(prompt='|Q', completion='A!', label=True)
    assert S.load(t, rl='kto')(dict(q='Q', a='A', ok=False, system='S')) == dict(prompt='S|Q', completion='A!', label=False)

@pytest.mark.parametrize('bad', ['yes', 1, 0, None])
def test_kto_label_must_be_bool(bad):
    with pytest.raises(UserError, match="column 'label': found .*expected a boolean true/false"):
        S.load('chatml.prompt_pairs', rl='kto')({'prompt': 'P', 'completion': 'X', 'label': bad})

# ---- chat templates, with both tiny tokenizers
@pytest.fixture(scope='module')
def toks():
    from transformers import AutoTokenizer
    return {f: AutoTokenizer.from_pretrained(resolve_model(f'prefnb:tiny-{f}')) for f in ('chatml', 'llama')}

BOT = '<|begin_of_text|>'

def test_chat_template_default(toks):
    r = toy_rows('messages', 1)[0]
    P, C, R = r['messages'][0]['content'], r['chosen']['content'], r['rejected']['content']
    assert S.load('chat_template.default', tokenizer=toks['chatml'])(r) == dict(prompt=CHATML.format(P=P), chosen=C + '<|im_end|>', rejected=R + '<|im_end|>')
    assert S.load('chat_template', tokenizer=toks['llama'])(r) == dict(prompt=BOT + LLAMA.format(P=P), chosen=C + '<|eot_id|>', rejected=R + '<|eot_id|>')

def test_chat_template_options(toks):
    row = dict(conv=[{'from': 'sys', 'value': 'S'}, {'from': 'human', 'value': 'hello'}],
               good=[{'from': 'gpt', 'value': 'goodbye'}], bad={'from': 'gpt', 'value': 'no'})
    fn = S.load('chat_template.default', tokenizer=toks['llama'], field_messages='conv', field_chosen='good', field_rejected='bad',
                message_property_mappings={'role': 'from', 'content': 'value'},
                roles={'system': ['sys'], 'user': ['human'], 'assistant': ['gpt']}, chat_template='chatml')
    assert fn(row) == dict(prompt=CHATML_SYS.format(S='S', P='hello'), chosen='goodbye<|im_end|>', rejected='no<|im_end|>')
    jinja = "{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    r = dict(messages='hello', chosen='goodbye', rejected='no')
    assert S.load('chat_template.default', tokenizer=toks['chatml'], chat_template_jinja=jinja)(r)['chosen'] == 'goodbye<end_of_turn>'

def test_chat_template_rewritten_content_is_an_error(toks):
    up = "{% for m in messages %}{{ m['content'] | upper }};{% endfor %}"
    with pytest.raises(UserError, match="column 'chosen': found str 'goodbye', expected content that the chat template writes unchanged"):
        S.load('chat_template.default', tokenizer=toks['chatml'], chat_template_jinja=up)(dict(messages='hi', chosen='goodbye', rejected='no'))

def test_chat_template_tool_turns_kept(toks):
    row = dict(messages=[{'role': 'user', 'content': 'weather?'}, {'role': 'assistant', 'content': 'calling'},
                         {'role': 'tool', 'content': '{"temp": 20}'}], chosen='It is 20.', rejected='No idea.')
    out = S.load('chat_template.default', tokenizer=toks['chatml'])(row)
    assert out['prompt'].endswith('<|im_start|>tool\n{"temp": 20}<|im_end|>\n<|im_start|>assistant\n')

def test_chat_template_argilla_chat(toks):
    r = toy_rows('argilla_chat', 1)[0]
    P, C, R = r['chosen'][0]['content'], r['chosen'][1]['content'], r['rejected'][1]['content']
    assert S.load('chat_template.argilla_chat', tokenizer=toks['chatml'])(r) == dict(prompt=CHATML.format(P=P), chosen=C + '<|im_end|>', rejected=R + '<|im_end|>')
    assert S.load('chat_template.argilla_chat', tokenizer=toks['llama'])(r) == dict(prompt=BOT + LLAMA.format(P=P), chosen=C + '<|eot_id|>', rejected=R + '<|eot_id|>')

def test_orpo_chat_template_argilla(toks):
    r = toy_rows('argilla_chat', 1)[0] | {'system': 'S'}
    P, C, R = r['chosen'][0]['content'], r['chosen'][1]['content'], r['rejected'][1]['content']
    assert S.load('chat_template.argilla', rl='orpo', tokenizer=toks['chatml'])(r) == dict(
        prompt=CHATML_SYS.format(S='S', P=P), chosen=C + '<|im_end|>\n', rejected=R + '<|im_end|>\n')
    assert S.load('chat_template.argilla', rl='orpo', tokenizer=toks['llama'])(r) == dict(
        prompt=BOT + LLAMA_SYS.format(S='S', P=P), chosen=C + '<|eot_id|>', rejected=R + '<|eot_id|>')

@pytest.mark.parametrize('msgs,msg', [
    ([{'content': 'a'}], "column 'messages[0].role': found no such column, expected a role"),
    ([{'role': 'wizard', 'content': 'a'}], "column 'messages[0].role': found str 'wizard', expected one of ['system', 'user', 'assistant', 'tool']"),
    ([{'role': 'user', 'content': 'a'}, {'role': 'user', 'content': 'b'}], "column 'messages[1].role': found str 'user', expected a turn after 'user'"),
    ([{'role': 'user', 'content': 'a'}, {'role': 'system', 'content': 'b'}], "column 'messages[1].role': found str 'system', expected system only as the first message"),
    ([{'role': 'user', 'content': 3}], "column 'messages[0].content': found int 3, expected a string"),
    (['just text'], "column 'messages[0]': found str 'just text', expected a message dict {role, content}"),
])
def test_malformed_messages(toks, msgs, msg):
    with pytest.raises(UserError) as e:
        S.load('chat_template.default', tokenizer=toks['chatml'])(dict(messages=msgs, chosen='c', rejected='r'))
    assert msg in str(e.value)

# ---- registry
def test_resolution_and_close_matches():
    with pytest.raises(UserError, match=r"type: unknown strategy 'chatml.intell' for rl=dpo; did you mean chatml.intel"):
        S.resolve_name('chatml.intell', 'dpo')
    with pytest.raises(UserError, match=r"unknown strategy 'chat_template.argilla' for rl=kto"):
        S.resolve_name('chat_template.argilla', 'kto')
    assert S.resolve_name('chat_template.argilla', 'orpo') == 'chat_template.argilla'
    assert 'chat_template.argilla' not in S.available('dpo') and 'zephyr.nectar' in S.available('orpo')
    assert S.resolve_name('passthrough', 'kto') == 'passthrough'

def test_register_strategy_decorator():
    @S.register_strategy('mine.default', rl='kto')
    def mine(row): return dict(prompt=row['q'], completion=row['a'], label=True)
    try:
        assert S.resolve_name('mine', 'kto') == 'mine.default' and 'mine.default' not in S.available('dpo')
        assert S.load('mine', rl='kto')(dict(q='Q', a='A')) == dict(prompt='Q', completion='A', label=True)
    finally: del S.REGISTRY['kto', 'mine.default']

def test_no_imports_from_config_strings():
    with pytest.raises(UserError): S.resolve_name('os.system', 'dpo')
    with pytest.raises(UserError): S.resolve_name('prefnb.zoo.toy_rows', 'dpo')


def test_import_strategies_on_purpose(tmp_path):
    f = tmp_path/'my_fmt.py'
    f.write_text("from prefnb.strategies import register_strategy, text\n"
                 "@register_strategy('myqa.default', rl='kto')\n"
                 "def myqa(row): return dict(prompt=text(row, 'q'), completion=text(row, 'a'), label=row['ok'])\n")
    with pytest.raises(UserError, match="unknown strategy 'myqa'"): S.resolve_name('myqa', 'kto')
    try:
        assert S.import_strategies(str(f)) == ['kto:myqa.default']
        assert S.load('myqa', rl='kto')(dict(q='Q', a='A', ok=True)) == dict(prompt='Q', completion='A', label=True)
    finally: S.REGISTRY.pop(('kto', 'myqa.default'), None)
    with pytest.raises(UserError, match="import_strategies: no such file"): S.import_strategies(str(tmp_path/'nope.py'))

# ---- every named template through chat_template.default: the answer is the template's own closing of the turn
NAMED_TURN_END = {'chatml': '<|im_end|>', 'qwen_25': '<|im_end|>', 'qwen3': '<|im_end|>', 'llama3': '<|eot_id|>', 'llama3_2': '<|eot_id|>',
                  'mistral_v1': '</s>', 'mistral_v2v3': '</s>', 'mistral_v3_tekken': '</s>', 'mistral_v7_tekken': '</s>',
                  'gemma3': '<end_of_turn>', 'phi_3': '<|end|>', 'phi_35': '<|end|>', 'phi_4': '<|im_end|>',
                  'deepseek_v2': '</s>', 'deepseek_v3': '<｜end▁of▁sentence｜>', 'zephyr': '</s>'}

@pytest.mark.parametrize('name', sorted(NAMED_TURN_END))
def test_named_templates_through_chat_template_default(toks, name):
    from prefnb.templates import render_chat
    tok = toks['llama']; tok_eos = tok.eos_token
    tok.eos_token = '</s>' if NAMED_TURN_END[name] == '</s>' else tok_eos
    try:
        msgs = [dict(role='system', content='Be brief.'), dict(role='user', content='Hi'), dict(role='assistant', content='Hello!'),
                dict(role='user', content='Name a colour.')]
        out = S.load('chat_template.default', tokenizer=tok, chat_template=name)(dict(messages=msgs, chosen='Blue.', rejected='Red, I think.'))
        assert out['prompt'] == render_chat(name, msgs, True, bos_token=tok.bos_token, eos_token=tok.eos_token)
        assert out['chosen'] == 'Blue.' + NAMED_TURN_END[name] and out['rejected'] == 'Red, I think.' + NAMED_TURN_END[name]
    finally: tok.eos_token = tok_eos
