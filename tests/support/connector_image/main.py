"""Entrypoint of the test connector image, as Airbyte's Python connector images have one."""

from source_faker.run import run

if __name__ == "__main__":
    run()
