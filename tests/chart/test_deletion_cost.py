"""workers.deletionCost: workers get a token of their own, allowed one thing by RBAC and a
ValidatingAdmissionPolicy: their own pod's deletion cost. Off by default (no app pod has a token)."""
from .helm_template_generator import by_kind_name, of_kind, render_chart

ON = {"workers": {"deletionCost": {"enabled": True, "intervalSeconds": 3}},
      "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/app"}}}
SA = "release-django-celery-worker"


def pod_spec(deployment):
    return deployment["spec"]["template"]["spec"]


def env(deployment):
    return {e["name"]: e.get("value") for e in pod_spec(deployment)["containers"][0]["env"]}


def test_off_by_default_no_token_no_policy():
    objects = render_chart()
    assert not of_kind(objects, "ValidatingAdmissionPolicy") and not of_kind(objects, "Role")
    worker = by_kind_name(objects, "Deployment", "release-django-celery-worker-default")
    assert pod_spec(worker)["automountServiceAccountToken"] is False
    assert "DEPLOYKIT_POD_DELETION_COST_INTERVAL" not in env(worker)


def test_workers_get_their_own_token_and_the_interval_other_pods_none():
    objects = render_chart(values=ON)
    for deployment in of_kind(objects, "Deployment"):
        spec = pod_spec(deployment)
        if deployment["metadata"]["name"].startswith("release-django-celery-worker-"):
            assert (spec["serviceAccountName"], spec["automountServiceAccountToken"]) == (SA, True)
            assert env(deployment)["DEPLOYKIT_POD_DELETION_COST_INTERVAL"] == "3"
        else:
            assert spec["automountServiceAccountToken"] is False, deployment["metadata"]["name"]
    account = by_kind_name(objects, "ServiceAccount", SA)
    # the object store's cloud identity stays with the workers
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/app"}


def test_rbac_grants_patch_on_pods_only_and_the_policy_narrows_it_to_the_own_pods_annotation():
    objects = render_chart(values=ON)
    assert by_kind_name(objects, "Role", SA)["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}]
    binding = by_kind_name(objects, "RoleBinding", SA)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SA, "namespace": "apps"}]
    (policy,) = of_kind(objects, "ValidatingAdmissionPolicy")
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConditions"][0]["expression"] == f"request.userInfo.username == 'system:serviceaccount:apps:{SA}'"
    rules = " ".join(v["expression"] for v in spec["validations"])
    for needle in ("authentication.kubernetes.io/pod-name", "object.spec == oldObject.spec", "ownerReferences",
                   "variables.cost"):
        assert needle in rules
    (vap_binding,) = of_kind(objects, "ValidatingAdmissionPolicyBinding")
    assert vap_binding["spec"]["policyName"] == policy["metadata"]["name"] == "apps-release-django-celery-worker-deletion-cost"
    assert vap_binding["spec"]["validationActions"] == ["Deny"]


def test_a_pool_may_opt_out_and_gets_no_token():
    values = {**ON, "workers": {**ON["workers"], "pools": [
        {"name": "default", "queues": ["default"]},
        {"name": "short", "queues": ["short"], "deletionCost": False}]}}
    objects = render_chart(values=values)
    default = by_kind_name(objects, "Deployment", "release-django-celery-worker-default")
    short = by_kind_name(objects, "Deployment", "release-django-celery-worker-short")
    assert env(default)["DEPLOYKIT_POD_DELETION_COST_INTERVAL"] == "3"
    assert pod_spec(short)["automountServiceAccountToken"] is False
    assert "DEPLOYKIT_POD_DELETION_COST_INTERVAL" not in env(short)
