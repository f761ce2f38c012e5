import unilandmark


def test_every_public_name_imports():
    missing = [name for name in unilandmark.__all__ if not hasattr(unilandmark, name)]
    assert missing == []
