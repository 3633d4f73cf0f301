"""What the command lines share: one logging setup."""
import logging

__all__ = ['LOG_FORMAT', 'setup_logging']

LOG_FORMAT = '%(asctime)s %(levelname)s %(name)s: %(message)s'


def setup_logging(level=logging.INFO):
    """Log to stderr in the command lines' common format (a no-op if logging is already set up)."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
