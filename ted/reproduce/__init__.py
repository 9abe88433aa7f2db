"""`ted reproduce`: the paper's tables from two endpoints, as one resumable job of checkpointed steps.

options.py: the option table · plan.py: the configuration, the steps, the state file ·
units.py: split, distil, evaluate · estimate.py: the cost model behind --dry-run ·
report.py: report.md/json/html · paper.py: the paper's numbers, quoted · run.py: the orchestrator.
"""
