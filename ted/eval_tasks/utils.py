"""lm-eval glue for the ted_* tasks: every function calls `ted` (see `ted.lm_eval_docs`).

`custom_dataset` functions receive lm-eval's `--metadata` as keyword arguments:
`library` (a local path or `org/name@version`; empty = baseline; default `TED_LIBRARY`),
`data_files` (a local copy of the benchmark in its Hub schema; default `TED_DATA_DIR/<task>`),
`dataset_revision` (override the pinned dataset revision; `revision` is the model's and is never read),
`image_placeholders` (true/false; default: only for models given as `pretrained=`, see `ted.lm_eval_docs`).
"""

from __future__ import annotations

from functools import partial

from ted.lm_eval_docs import keep_system_text, lm_eval_docs, rg_docs, score_doc, total

keep_system_text()  # a chat template without a system role must not drop the library

mathvision = partial(lm_eval_docs, "ted_mathvision")
mathvision_testmini = partial(lm_eval_docs, "ted_mathvision_testmini")
visualpuzzles = partial(lm_eval_docs, "ted_visualpuzzles")
aime25 = partial(lm_eval_docs, "ted_aime25")
aime = partial(lm_eval_docs, "ted_aime")  # the older name of ted_aime25
aime24 = partial(lm_eval_docs, "ted_aime24")
rg = rg_docs  # ted_rg: the problems come from the metadata (generator, split, n, seed, config)
process_results = score_doc

__all__ = ["aime", "aime24", "aime25", "mathvision", "mathvision_testmini", "process_results", "rg", "total", "visualpuzzles"]
