"""Every bad input we test, as data: the command line, and the fragment its one-line error message must contain.

Placeholders (filled by ``tests/test_bad_inputs.py`` from files it builds once):
``{tmp}`` a scratch folder; ``{file}`` an ordinary file; ``{artifact}`` a good digits artifact (IPC 1);
``{ckpt}`` a checkpoint of a finished 2-step digits DM run (IPC 1, batch_real 4, SGD lr 1);
``{empty_ckpt}`` a 0-byte file; ``{truncated_ckpt}`` the first half of ``{ckpt}``; ``{garbage}`` random bytes;
``{nan_artifact}`` / ``{inf_artifact}`` artifacts with NaN images / one infinite pixel (written around the checks);
``{folder_artifact}`` an artifact distilled from the image folder ``{folder}``; ``{same_names_folder}`` another folder
with the same class names (other images, other statistics); ``{small_folder}`` the same names at another image size;
``{digits_folder}`` an image folder shaped like digits (10 classes of 1x8x8); ``{pool}`` a proxy pool for digits.

Add a row whenever a new way to get it wrong is found; each row must fail with exit status 2 and no traceback.
"""

from __future__ import annotations

#: the start of a fit that would run (1 DM step on digits); rows append what makes it wrong
FIT = ["fit", "--model", "DM", "--model.ipc", "1", "--data.batch_real", "4", "--trainer.max_steps", "1",
       "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
       "--trainer.enable_checkpointing", "false", "--trainer.enable_model_summary", "false",
       "--trainer.default_root_dir", "{tmp}/runs"]
#: a resume of {ckpt} that would run (to step 3); rows append what they change
RESUME = [*FIT, "--trainer.max_steps", "3", "--model.optimizer", "torch.optim.SGD", "--model.optimizer.lr", "1.0",
          "--ckpt_path", "{ckpt}"]
EVALUATE = ["evaluate", "--runs", "1", "--epochs", "1"]

BAD_INPUTS: list[dict[str, object]] = [
    # ---- the budget and the precision
    {"id": "max_steps_0", "args": [*FIT, "--trainer.max_steps", "0"],
     "message": "trainer.max_steps=0 runs no distillation iteration"},
    {"id": "max_epochs_0", "args": [*FIT, "--trainer.max_steps", "-1", "--trainer.max_epochs", "0"],
     "message": "trainer.max_epochs=0 runs no distillation iteration"},
    {"id": "limit_train_batches_0", "args": [*FIT, "--trainer.limit_train_batches", "0"],
     "message": "trainer.limit_train_batches=0 runs no distillation iteration"},
    {"id": "bf16_true", "args": [*FIT, "--trainer.precision", "bf16-true"],
     "message": "trainer.precision='bf16-true' is not supported for distillation"},
    {"id": "16_true", "args": [*FIT, "--trainer.precision", "16-true"],
     "message": "trainer.precision='16-true' is not supported for distillation"},
    # ---- outputs, checked before any compute
    {"id": "artifact_is_a_directory", "args": [*FIT, "--model.artifact_path", "{tmp}"],
     "message": "is a directory; give a file path"},
    {"id": "artifact_under_a_file", "args": [*FIT, "--model.artifact_path", "{file}/distilled.pt"],
     "message": "which is a file, not a directory"},
    {"id": "artifact_read_only_location", "args": [*FIT, "--model.artifact_path", "/proc/self/distilled.pt"],
     "message": "is not writable"},
    {"id": "evaluate_output_is_a_directory", "args": [*EVALUATE, "--distilled", "{artifact}", "--output", "{tmp}"],
     "message": "the --output path '{tmp}' is a directory; give a file path inside it"},
    {"id": "evaluate_output_under_a_file",
     "args": [*EVALUATE, "--distilled", "{artifact}", "--output", "{file}/eval.json"],
     "message": "which is a file, not a directory"},
    {"id": "pretrain_output_under_a_file", "args": ["pretrain", "--output", "{file}/pool.pt", "--epochs", "1"],
     "message": "which is a file, not a directory"},
    {"id": "pretrain_output_read_only", "args": ["pretrain", "--output", "/proc/self/pool.pt", "--epochs", "1"],
     "message": "is not writable"},
    # ---- unknown names
    {"id": "unknown_method", "args": ["fit", "--model", "Foo"],
     "message": "unknown method 'Foo' for --model; available: DC, DM, DSA, IDC, IDM, MTT, RandomSelection"},
    {"id": "unknown_method_path", "args": ["fit", "--model", "lightning_dd.methods.Foo"],
     "message": "unknown method 'lightning_dd.methods.Foo'"},
    {"id": "unknown_network", "args": [*FIT, "--model.network", "foo"],
     "message": "Expected a typing.Literal['convnet', 'convnet_d1',"},
    {"id": "unknown_network_value", "args": [*FIT, "--model.network", "foo"], "message": "Got value: foo"},
    {"id": "unknown_dataset", "args": [*FIT, "--data.dataset", "foo"],
     "message": "Expected a typing.Literal['digits', 'mnist', 'fashion_mnist', 'svhn', 'cifar10', 'cifar100', "
                "'tiny_imagenet', 'image_folder']. Got value: foo"},
    {"id": "pretrain_unknown_dataset", "args": ["pretrain", "--output", "{tmp}/p.pt", "--data.dataset", "foo"],
     "message": "Got value: foo"},
    {"id": "unknown_init", "args": [*FIT, "--model.init", "zeros"], "message": "Got value: zeros"},
    {"id": "unknown_space", "args": [*FIT, "--data.space", "lab"],
     "message": "Expected a typing.Literal['normalized', 'pixels', 'zca']. Got value: lab"},
    {"id": "unknown_dsa_strategy", "args": [*FIT, "--model.dsa_strategy", "wobble"],
     "message": "unknown DSA op 'wobble' in strategy 'wobble'; allowed ops: color"},
    {"id": "unknown_recipe", "args": ["pretrain", "--output", "{tmp}/pool.pt", "--recipe", "dc"],
     "message": "unknown --recipe 'dc'; allowed: cmi, iid"},
    {"id": "evaluate_unknown_network", "args": [*EVALUATE, "--distilled", "{artifact}", "--models", "foo"],
     "message": "unknown network 'foo'"},
    {"id": "regularizer_on_random", "args": [*FIT, "--model", "RandomSelection", "--model.regularizers+",
                                             "lightning_dd.regularizers.CMIRegularizer"],
     "message": "Option 'regularizers+' is not accepted"},
    # ---- bad numbers
    {"id": "batch_real_0", "args": [*FIT, "--data.batch_real", "0"], "message": "batch_real must be an integer >= 1"},
    {"id": "ipc_0", "args": [*FIT, "--model.ipc", "0"], "message": "ipc (images per class) must be >= 1, got 0"},
    {"id": "grid_every_negative", "args": [*FIT, "--model.image_grid_every_n_steps", "-1"],
     "message": "image_grid_every_n_steps must be an integer >= 0"},
    {"id": "zca_eps_0", "args": [*FIT, "--data.zca_eps", "0"], "message": "zca_eps must be > 0"},
    {"id": "seed_not_an_integer", "args": [*FIT, "--seed_everything", "true"],
     "message": "seed_everything must be an integer"},
    {"id": "evaluate_runs_0", "args": [*EVALUATE, "--distilled", "{artifact}", "--runs", "0"],
     "message": "runs must be >= 1"},
    {"id": "root_missing", "args": [*FIT, "--data.dataset", "cifar10"],
     "message": "Dataset 'cifar10' is read from files, so `root` is required"},
    # ---- checkpoints
    {"id": "ckpt_missing", "args": [*RESUME, "--ckpt_path", "{tmp}/nope.ckpt"], "message": "does not exist"},
    {"id": "ckpt_directory", "args": [*RESUME, "--ckpt_path", "{tmp}"],
     "message": "is a directory; give a .ckpt file"},
    {"id": "ckpt_empty", "args": [*RESUME, "--ckpt_path", "{empty_ckpt}"], "message": "is empty (0 bytes)"},
    {"id": "ckpt_truncated", "args": [*RESUME, "--ckpt_path", "{truncated_ckpt}"],
     "message": "is truncated or not a checkpoint"},
    {"id": "ckpt_garbage", "args": [*RESUME, "--ckpt_path", "{garbage}"],
     "message": "is truncated or not a checkpoint"},
    {"id": "ckpt_is_an_artifact", "args": [*RESUME, "--ckpt_path", "{artifact}"],
     "message": "is a distilled-set artifact, not a training checkpoint"},
    # ---- the resume policy: only the budget and the outputs may change
    {"id": "resume_other_ipc", "args": [*RESUME, "--model.ipc", "2"], "message": "model.ipc: checkpoint 1, this run 2"},
    {"id": "resume_other_lr", "args": [*RESUME, "--model.optimizer.lr", "0.5"],
     "message": "model.optimizer: checkpoint [{'lr': 1.0"},
    {"id": "resume_other_network", "args": [*RESUME, "--model.network", "convnet_w32"],
     "message": "model.network: checkpoint 'convnet', this run 'convnet_w32'"},
    {"id": "resume_other_method", "args": [*RESUME, "--model", "RandomSelection"],
     "message": "model.class_path: checkpoint 'lightning_dd.methods.dm.DM'"},
    {"id": "resume_other_batch_real", "args": [*RESUME, "--data.batch_real", "8"],
     "message": "data.batch_real: checkpoint 4, this run 8"},
    {"id": "resume_other_data_seed", "args": [*RESUME, "--seed_everything", "5"],
     "message": "checkpoint 0, this run 5"},
    {"id": "resume_other_dataset", "args": [*RESUME, "--data.dataset", "image_folder", "--data.root",
                                            "{digits_folder}"],
     "message": "data.dataset: checkpoint 'digits', this run 'image_folder'"},
    {"id": "resume_nothing_left", "args": [*RESUME, "--trainer.max_steps", "2"],
     "message": "the checkpoint is at step 2 already and trainer.max_steps=2: nothing is left to run"},
    # ---- artifacts
    {"id": "evaluate_nan_artifact", "args": [*EVALUATE, "--distilled", "{nan_artifact}"],
     "message": "images hold 8 NaN and 0 infinite values"},
    {"id": "evaluate_inf_artifact", "args": [*EVALUATE, "--distilled", "{inf_artifact}"],
     "message": "images hold 0 NaN and 1 infinite values"},
    {"id": "evaluate_missing_artifact", "args": [*EVALUATE, "--distilled", "{tmp}/nope.pt"],
     "message": "does not exist"},
    {"id": "evaluate_directory_artifact", "args": [*EVALUATE, "--distilled", "{tmp}"],
     "message": "is a directory; give the artifact file"},
    {"id": "evaluate_empty_artifact", "args": [*EVALUATE, "--distilled", "{empty_ckpt}"],
     "message": "is empty (0 bytes)"},
    {"id": "evaluate_garbage_artifact", "args": [*EVALUATE, "--distilled", "{garbage}"],
     "message": "is not a readable lightning_dd distilled set"},
    {"id": "evaluate_checkpoint_as_artifact", "args": [*EVALUATE, "--distilled", "{ckpt}"],
     "message": "is a Lightning training checkpoint, not a distilled set"},
    {"id": "evaluate_on_another_folder_same_names",
     "args": [*EVALUATE, "--distilled", "{folder_artifact}", "--data.root", "{same_names_folder}"],
     "message": "does not match the image_folder data under"},
    {"id": "evaluate_on_a_folder_of_another_shape",
     "args": [*EVALUATE, "--distilled", "{folder_artifact}", "--data.root", "{small_folder}"],
     "message": "image shape (3, 8, 8) vs (3, 4, 4)"},
    {"id": "cmi_nan_artifact", "args": ["cmi", "--distilled", "{nan_artifact}", "--pool", "{pool}"],
     "message": "images hold 8 NaN"},
    {"id": "cmi_missing_pool", "args": ["cmi", "--distilled", "{artifact}", "--pool", "{tmp}/nope.pt"],
     "message": "nope.pt"},
]
