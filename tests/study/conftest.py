from tests.pipeline.conftest import text_folder, tiny_gpt2  # noqa: F401  (fixtures, re-used)
