"""The transformers backend with tiny, randomly initialised models built here (no Hub access).

A word-level tokenizer is trained on a few sentences; the text model is a 2-layer Llama, the
vision-language model a LLaVA (tiny CLIP vision tower + the same Llama) with a LLaVA processor.
Random weights say nothing about quality; the tests check the plumbing: prompts, batching,
sampling, usage counts and that images reach the vision tower.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from ted.errors import ModelError
from ted.models import Message, SamplingParams, load_model
from ted.models.transformers_local import HFChatModel
from ted.tokens import HFTokenizerCounter

pytestmark = pytest.mark.integration

SENTENCES = ["the cat sat on the mat", "what is two plus two", "the answer is four", "name a colour", "red green blue"]
TEXT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<{{ m.role }}> {{ m.content }}{{ '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)
VISION_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ m.role }}: "
    "{% for p in m.content %}{% if p.type == 'image' %}<image>{% else %}{{ p.text }}{% endif %}{% endfor %}"
    "{{ '\n' }}{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)
IMAGE_TOKENS = 4  # a 28x28 image in 14x14 patches, CLS dropped ("default" feature strategy)


def tiny_tokenizer(chat_template: str | None) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.decoder = decoders.WordPiece()
    words = SENTENCES + ["system user assistant System User Assistant : < >"]
    core.train_from_iterator(words, trainers.WordLevelTrainer(special_tokens=["<pad>", "<bos>", "<eos>", "<unk>", "<image>"]))
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
        chat_template=chat_template,
    )


def tiny_llama_config(tokenizer: Any) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.5,  # large random weights: replies depend visibly on the prompt
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_text_model(folder: Path, chat_template: str | None) -> str:
    import torch
    from transformers import LlamaForCausalLM

    tokenizer = tiny_tokenizer(chat_template)
    torch.manual_seed(0)
    LlamaForCausalLM(tiny_llama_config(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def build_vision_model(folder: Path) -> str:
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tokenizer = tiny_tokenizer(None)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}),
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=VISION_TEMPLATE,
    )
    vision = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=tiny_llama_config(tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def text_model(tmp_path_factory: pytest.TempPathFactory) -> HFChatModel:
    return load_model("hf:" + build_text_model(tmp_path_factory.mktemp("tiny_llama"), TEXT_TEMPLATE))


@pytest.fixture(scope="module")
def vision_model(tmp_path_factory: pytest.TempPathFactory) -> HFChatModel:
    return load_model("hf:" + build_vision_model(tmp_path_factory.mktemp("tiny_llava")))


QUESTION = [Message("system", "the answer is four"), Message("user", "what is two plus two")]


def test_text_model_samples_n_replies(text_model: HFChatModel) -> None:
    assert text_model.supports_images is False
    prompt = text_model.prompt_text(QUESTION)
    assert prompt == "<bos><system> the answer is four\n<user> what is two plus two\n<assistant>"

    params = SamplingParams(n=2, max_tokens=8, temperature=0.8, seed=1)
    result = asyncio.run(text_model.chat(QUESTION, params))
    assert len(result.texts) == 2 and all(isinstance(t, str) for t in result.texts)
    prompt_tokens = len(text_model.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert result.usage.prompt_tokens == 2 * prompt_tokens
    assert 2 <= result.usage.completion_tokens <= 16
    assert asyncio.run(text_model.chat(QUESTION, params)).texts == result.texts  # seeded: reproducible


def test_greedy_samples_agree(text_model: HFChatModel) -> None:
    result = asyncio.run(text_model.chat(QUESTION, SamplingParams(n=2, max_tokens=8, temperature=0)))
    assert result.texts[0] == result.texts[1]


def test_concurrent_calls_share_a_batch_and_match_solo_runs(text_model: HFChatModel) -> None:
    prompts = [[Message("user", "name a colour " * k)] for k in (1, 3, 6)]  # different lengths: left padding
    params = SamplingParams(max_tokens=6, temperature=0)
    solo = [asyncio.run(text_model.chat(p, params)).text for p in prompts]
    assert len(set(solo)) == 3  # otherwise the comparison below would prove nothing

    batch_sizes: list[int] = []
    hook = text_model.load().register_forward_pre_hook(
        lambda _m, _a, kw: batch_sizes.append(kw["input_ids"].shape[0]), with_kwargs=True
    )

    async def together() -> list[str]:
        results = await asyncio.gather(*(text_model.chat(p, params) for p in prompts))
        return [r.text for r in results]

    try:
        joint = asyncio.run(together())
    finally:
        hook.remove()
    assert batch_sizes[0] == 3
    assert joint == solo


def test_tokenizer_counts_library_tokens(text_model: HFChatModel) -> None:
    counter = HFTokenizerCounter(text_model.tokenizer, "tiny")
    assert counter.count("the cat sat on the mat") == 6


def test_model_without_chat_template_gets_the_fallback(tmp_path: Path) -> None:
    model = load_model("hf:" + build_text_model(tmp_path, None))
    assert model.prompt_text(QUESTION) == "<bos>System: the answer is four\n\nUser: what is two plus two\n\nAssistant:"
    result = asyncio.run(model.chat(QUESTION, SamplingParams(max_tokens=4, temperature=0)))
    assert result.usage.completion_tokens >= 1


def test_text_model_refuses_images(text_model: HFChatModel) -> None:
    with pytest.raises(ModelError, match="text-only model"):
        asyncio.run(text_model.chat([Message("user", "what colour", images=[Image.new("RGB", (8, 8))])]))


def test_missing_model_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"^cannot load transformers model .*no_such_model") as caught:
        load_model(f"hf:{tmp_path / 'no_such_model'}")
    assert "\n" not in str(caught.value)


def png(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_vision_model_feeds_the_image_to_the_vision_tower(vision_model: HFChatModel) -> None:
    assert vision_model.supports_images is True
    asking = [Message("user", "what colour is this", images=[png("red")])]
    assert vision_model.prompt_text(asking) == "<bos>user: <image>what colour is this\nassistant:"

    seen: list[tuple[int, ...]] = []
    tower = vision_model.load().model.vision_tower
    hook = tower.register_forward_pre_hook(lambda _m, args, kw: seen.append(tuple((args or [kw.get("pixel_values")])[0].shape)), with_kwargs=True)
    params = SamplingParams(n=2, max_tokens=6, temperature=0.8, seed=2)
    try:
        with_image = asyncio.run(vision_model.chat(asking, params))
        without = asyncio.run(vision_model.chat([Message("user", "what colour is this")], params))
    finally:
        hook.remove()

    assert seen == [(2, 3, 28, 28)]  # both samples of the image call; none for the text-only call
    assert len(with_image.texts) == 2 and len(without.texts) == 2
    # The processor expanded the one <image> placeholder into the image's patch tokens.
    assert with_image.usage.prompt_tokens - without.usage.prompt_tokens == 2 * IMAGE_TOKENS
