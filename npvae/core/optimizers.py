r"""First-order optimizers that update parameter arrays in place.

Both take ``params`` and ``grads`` as dicts with the same keys, and keep
their per-parameter state under those keys, so a checkpoint can store it.
Updates run in the parameters' own dtype: only Python floats meet the
arrays, and those never promote float32 work to float64.
"""
import math
import numbers

import numpy as np

__all__ = ["Adam", "adam_step_textbook", "SGD", "learning_rate_at"]


def _check_rate(learning_rate):
    if not (isinstance(learning_rate, numbers.Real)
            and not isinstance(learning_rate, bool) and learning_rate > 0
            and math.isfinite(learning_rate)):
        raise ValueError(
            f"learning_rate must be a positive finite number, got {learning_rate!r}")
    return float(learning_rate)


class SGD:
    r"""Stochastic gradient descent with optional heavy-ball momentum.

    .. math::
        v \leftarrow \mu v + g, \qquad \theta \leftarrow \theta - \eta v

    (the convention of PyTorch's ``SGD``; with :math:`\mu = 0` it is
    :math:`\theta \leftarrow \theta - \eta g`).
    """

    def __init__(self, learning_rate=0.01, momentum=0.0):
        self.learning_rate = _check_rate(learning_rate)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.velocity = {}

    def step(self, params, grads):
        """Apply one update to every array of ``params`` in place."""
        lr = self.learning_rate
        for name, p in params.items():
            g = grads[name]
            if self.momentum:
                v = self.velocity.get(name)
                if v is None:
                    v = self.velocity[name] = np.zeros_like(p)
                v *= self.momentum
                v += g
                g = v
            p -= lr * g


class Adam:
    r"""Adam (Kingma & Ba, 2015) with bias correction.

    .. math::
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
        \theta_t &= \theta_{t-1} - \eta\,
            \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}

    :math:`\epsilon` is added after the square root of the bias-corrected
    second moment, as PyTorch and Keras do.  :func:`adam_step_textbook` is
    this update written out as above; :meth:`step` runs the same update in
    place (the tests show the two agree to rounding).

    Attributes
    ----------
    t : int
        Number of steps taken.
    m, v : dict
        First and second moment estimates, keyed like the parameters.
    """

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.learning_rate = _check_rate(learning_rate)
        for name, b in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= b < 1:
                raise ValueError(f"{name} must be in [0, 1), got {b!r}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.t = 0
        self.m, self.v = {}, {}
        self._buf = {}

    def step(self, params, grads):
        r"""Apply one update to every array of ``params`` in place.

        The bias corrections are folded into two scalars, which is the
        same update in exact arithmetic and saves a pass over the
        parameters:

        .. math::
            \eta\, \frac{m_t / c_1}{\sqrt{v_t / c_2} + \epsilon}
            = \frac{\eta \sqrt{c_2}}{c_1}
              \cdot \frac{m_t}{\sqrt{v_t} + \epsilon \sqrt{c_2}},
            \qquad c_i = 1 - \beta_i^t
        """
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        sqrt_c2 = math.sqrt(1.0 - b2 ** self.t)
        step_size = self.learning_rate * sqrt_c2 / (1.0 - b1 ** self.t)
        eps_hat = self.eps * sqrt_c2
        for name, p in params.items():
            g = grads[name]
            if name not in self.m:
                self.m[name] = np.zeros_like(p)
                self.v[name] = np.zeros_like(p)
            if name not in self._buf:
                self._buf[name] = np.empty_like(p)
            m, v, buf = self.m[name], self.v[name], self._buf[name]
            # In place through one scratch buffer: no temporary arrays.
            m *= b1
            np.multiply(g, 1.0 - b1, out=buf)
            m += buf
            v *= b2
            np.multiply(g, g, out=buf)
            buf *= 1.0 - b2
            v += buf
            np.sqrt(v, out=buf)
            buf += eps_hat
            np.divide(m, buf, out=buf)
            buf *= step_size
            p -= buf


def adam_step_textbook(theta, g, m, v, t, learning_rate=1e-3, beta1=0.9, beta2=0.999,
                       eps=1e-8):
    r"""One Adam step as Kingma & Ba write it, for reading and for testing
    :meth:`Adam.step` against; returns the new :math:`(\theta, m, v)`.

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g^2, \\
        \hat m_t = \frac{m_t}{1 - \beta_1^t}, \qquad
        \hat v_t = \frac{v_t}{1 - \beta_2^t}, \qquad
        \theta_t = \theta_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

    ``t`` counts steps from 1.
    """
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    return theta - learning_rate * m_hat / (np.sqrt(v_hat) + eps), m, v


def learning_rate_at(base_rate, schedule, progress):
    r"""Learning rate of a schedule at a fraction ``progress`` of training.

    * ``"constant"``: :math:`\eta`;
    * ``"cosine"``: :math:`\eta \cdot \tfrac12 (1 + \cos \pi p)`, falling
      from :math:`\eta` at :math:`p = 0` to 0 at :math:`p = 1`.
    """
    if schedule == "constant":
        return base_rate
    if schedule == "cosine":
        return base_rate * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {schedule!r}")
