import pytest

from edgesense.errors import ModelError
from edgesense.nn import registry
from edgesense.nn.registry import create_model, list_models, register_model


def test_register_create_and_list():
    @register_model("_test_dummy_model")
    def _factory(width: int = 3):
        return {"width": width}

    try:
        assert "_test_dummy_model" in list_models()
        assert create_model("_test_dummy_model", width=7) == {"width": 7}
        assert list_models() == sorted(list_models())
    finally:
        registry._REGISTRY.pop("_test_dummy_model", None)


def test_unknown_model_is_a_user_error():
    with pytest.raises(ModelError, match="unknown model 'no_such_model'"):
        create_model("no_such_model")


def test_duplicate_name_from_another_factory_is_rejected():
    @register_model("_test_dup")
    def first():
        return 1

    try:
        with pytest.raises(ValueError, match="already registered"):
            @register_model("_test_dup")
            def second():
                return 2
    finally:
        registry._REGISTRY.pop("_test_dup", None)
