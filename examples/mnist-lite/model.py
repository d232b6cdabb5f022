import math

try:
    from tabulate import tabulate  # noqa: F401  (installed by the job's pip step)
except ImportError:  # the example also runs without its optional dependency
    tabulate = None


class LogisticRegression:
    def __init__(self):
        self.params = [0.0, 0.0, 0.0]  # w0, w1, b

    def predict(self, x):
        w0, w1, b = self.params
        z = w0 * x[0] + w1 * x[1] + b
        return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))

    def gradient(self, batch):
        """Mean gradient of the log loss over `batch`, and the mean loss."""
        grad = [0.0, 0.0, 0.0]
        loss = 0.0
        for x, y in batch:
            p = self.predict(x)
            g = p - y
            grad[0] += g * x[0]
            grad[1] += g * x[1]
            grad[2] += g
            loss += -(y * math.log(p + 1e-12) + (1 - y) * math.log(1 - p + 1e-12))
        n = len(batch)
        return [v / n for v in grad], loss / n

    def step(self, grad, lr):
        self.params = [p - lr * g for p, g in zip(self.params, grad)]

    def accuracy(self, data):
        return sum((self.predict(x) > 0.5) == (y > 0.5) for x, y in data) / len(data)
