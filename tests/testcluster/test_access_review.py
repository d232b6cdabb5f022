"""SelfSubjectAccessReview through `kubectl auth can-i`, answered by the rule the API server
applies to requests: the admin may do anything; a pod's service-account token (read from the
pod's in-cluster mount) acts in its own namespace only."""


def sa_token(tc, ns, name):
    tc.kubectl("create", "namespace", ns)
    tc.kubectl("-n", ns, "run", name, "--image=busybox", "--restart=Never", "--command", "--",
               "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token")
    tc.kubectl("-n", ns, "wait", f"pod/{name}", "--for=jsonpath={.status.phase}=Succeeded",
               "--timeout=30s", timeout=60)
    return tc.kubectl("-n", ns, "logs", name).stdout.strip()


def test_can_i_admin(testcluster):
    res = testcluster.kubectl("auth", "can-i", "create", "pytorchjobs", "-n", "anywhere")
    assert res.stdout.strip() == "yes"
    assert "selfsubjectaccessreviews" in testcluster.kubectl("api-resources", "--api-group=authorization.k8s.io").stdout


def test_can_i_service_account_allowed_and_denied(testcluster, unique):
    token = sa_token(testcluster, unique, "tok")
    allowed = testcluster.kubectl("--token", token, "auth", "can-i", "create", "pytorchjobs", "-n", unique)
    assert allowed.stdout.strip() == "yes"
    denied = testcluster.kubectl("--token", token, "auth", "can-i", "create", "pytorchjobs", "-n", "default",
                                 check=False)
    assert denied.returncode == 1
    assert denied.stdout.startswith("no")
    assert f'system:serviceaccount:{unique}:default' in denied.stdout
    # The same rule decides real requests.
    forbidden = testcluster.kubectl("--token", token, "get", "pytorchjobs", "-n", "default", check=False)
    assert forbidden.returncode != 0 and "Forbidden" in forbidden.stderr
    assert testcluster.kubectl("--token", token, "get", "pods", "-n", unique).returncode == 0
    nodes = testcluster.kubectl("--token", token, "auth", "can-i", "list", "nodes", check=False)
    assert nodes.stdout.startswith("no")
