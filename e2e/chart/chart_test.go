package chart_test

import (
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// Names with the release name "quarks-job", whose full name is "quarks-job".
const (
	controllerName    = "quarks-job"
	webhookName       = "quarks-job-webhook"
	webhookConfigName = "quarks-job-webhook"
	outputServiceName = "quarks-job-output"
	webhookService    = "quarks-job-webhook"
	qjobLabel         = "quarks.cloudfoundry.org/qjob-name"
	monitoredLabel    = "quarks.cloudfoundry.org/monitored"
	digestA           = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB           = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	digestC           = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
)

func TestDefaultsRenderEveryComponent(t *testing.T) {
	r := render(t)
	want := map[string]int{
		"CustomResourceDefinition":         1,
		"ServiceAccount":                   2,
		"Deployment":                       2,
		"Service":                          4, // output endpoint, webhook, two metrics
		"PodDisruptionBudget":              1,
		"Role":                             2, // leader election, webhook certificates
		"RoleBinding":                      2,
		"ClusterRole":                      2, // controller, webhook configurations
		"ClusterRoleBinding":               2,
		"MutatingWebhookConfiguration":     1,
		"ValidatingWebhookConfiguration":   1,
		"ValidatingAdmissionPolicy":        1,
		"ValidatingAdmissionPolicyBinding": 1,
	}
	if got := r.kinds(); !maps.Equal(got, want) {
		t.Errorf("rendered kinds = %v, want %v", got, want)
	}
	if n := len(r.objects); n != 22 {
		t.Errorf("rendered %d objects, want 22: %v", n, r.names())
	}
	for _, o := range r.objects {
		if o.Kind == "CustomResourceDefinition" || strings.HasPrefix(o.Kind, "Cluster") || strings.HasSuffix(o.Kind, "WebhookConfiguration") || strings.HasPrefix(o.Kind, "ValidatingAdmissionPolicy") {
			continue
		}
		if o.Namespace != releaseNS {
			t.Errorf("%s %s is in namespace %q, want the release namespace %q", o.Kind, o.Name, o.Namespace, releaseNS)
		}
	}

	webhook := get[*appsv1.Deployment](t, r, "Deployment", webhookName)
	if got := *webhook.Spec.Replicas; got != 2 {
		t.Errorf("webhook replicas = %d, want 2", got)
	}
	spread := webhook.Spec.Template.Spec.TopologySpreadConstraints
	if len(spread) != 1 || spread[0].WhenUnsatisfiable != corev1.ScheduleAnyway || !reflect.DeepEqual(spread[0].LabelSelector.MatchLabels, webhook.Spec.Selector.MatchLabels) {
		t.Errorf("webhook replicas are not spread softly across nodes: %+v", spread)
	}
	pdb := get[*policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget", webhookName)
	if !reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, webhook.Spec.Selector.MatchLabels) {
		t.Errorf("PodDisruptionBudget selects %v, the webhook's pods are %v", pdb.Spec.Selector.MatchLabels, webhook.Spec.Selector.MatchLabels)
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget maxUnavailable = %v, want 1", pdb.Spec.MaxUnavailable)
	}

	controller := get[*appsv1.Deployment](t, r, "Deployment", controllerName)
	controllerArgs := args(t, controller.Spec.Template.Spec.Containers[0])
	if controllerArgs["leader-elect"] != "true" || controllerArgs["leader-election-namespace"] != releaseNS {
		t.Errorf("controller runs without leader election in %s: %v", releaseNS, controller.Spec.Template.Spec.Containers[0].Args)
	}
	if _, ok := controllerArgs["watch-namespaces"]; ok {
		t.Errorf("controller watches %q by default, want every namespace", controllerArgs["watch-namespaces"])
	}
}

func TestImagesDefaultToTheAppVersion(t *testing.T) {
	appVersion := loadChart(t).Metadata.AppVersion
	r := render(t)
	controller := get[*appsv1.Deployment](t, r, "Deployment", controllerName).Spec.Template.Spec.Containers[0]
	webhook := get[*appsv1.Deployment](t, r, "Deployment", webhookName).Spec.Template.Spec.Containers[0]
	for _, c := range []struct{ got, want string }{
		{controller.Image, "docker.io/cfcontainerization/quarks-job:" + appVersion},
		{webhook.Image, "docker.io/cfcontainerization/quarks-job-webhook:" + appVersion},
		{args(t, webhook)["persister-image"], "docker.io/cfcontainerization/quarks-job-persister:" + appVersion},
	} {
		if c.got != c.want {
			t.Errorf("image %q, want %q", c.got, c.want)
		}
	}
	if controller.ImagePullPolicy != corev1.PullIfNotPresent || args(t, webhook)["persister-image-pull-policy"] != "IfNotPresent" {
		t.Errorf("pull policies %q and %q, want IfNotPresent", controller.ImagePullPolicy, args(t, webhook)["persister-image-pull-policy"])
	}

	// The local cluster's images: one tag for all three.
	r = render(t, "controller.image.tag=dev", "webhook.image.tag=dev", "persister.image.tag=dev", "persister.image.pullPolicy=Always")
	webhook = get[*appsv1.Deployment](t, r, "Deployment", webhookName).Spec.Template.Spec.Containers[0]
	if got := args(t, webhook)["persister-image"]; got != "docker.io/cfcontainerization/quarks-job-persister:dev" {
		t.Errorf("persister image %q with tag dev", got)
	}
	if got := args(t, webhook)["persister-image-pull-policy"]; got != "Always" {
		t.Errorf("persister pull policy %q, want Always", got)
	}
}

func TestEachImageCanBePinnedByDigestAlone(t *testing.T) {
	for _, tc := range []struct {
		set                            string
		controller, webhook, persister string
	}{
		{"controller.image.digest=" + digestA, "docker.io/cfcontainerization/quarks-job@" + digestA, ":", ":"},
		{"webhook.image.digest=" + digestB, ":", "docker.io/cfcontainerization/quarks-job-webhook@" + digestB, ":"},
		{"persister.image.digest=" + digestC, ":", ":", "docker.io/cfcontainerization/quarks-job-persister@" + digestC},
	} {
		t.Run(tc.set, func(t *testing.T) {
			r := render(t, tc.set, "controller.image.tag=v9", "webhook.image.tag=v9", "persister.image.tag=v9")
			controller := get[*appsv1.Deployment](t, r, "Deployment", controllerName).Spec.Template.Spec.Containers[0]
			webhook := get[*appsv1.Deployment](t, r, "Deployment", webhookName).Spec.Template.Spec.Containers[0]
			for _, c := range []struct{ what, got, want string }{
				{"controller", controller.Image, tc.controller},
				{"webhook", webhook.Image, tc.webhook},
				{"persister", args(t, webhook)["persister-image"], tc.persister},
			} {
				if c.want == ":" {
					// Not pinned: still the tag.
					if !strings.HasSuffix(c.got, ":v9") || strings.Contains(c.got, "@") {
						t.Errorf("%s image %q, want the tag v9", c.what, c.got)
					}
				} else if c.got != c.want {
					t.Errorf("%s image %q, want %q", c.what, c.got, c.want)
				}
			}
		})
	}
}

// TestReleasedChartPinsItsImages: make release records each image's digest in Chart.yaml; it
// pins the appVersion tag until the user sets a tag or a digest of their own.
func TestReleasedChartPinsItsImages(t *testing.T) {
	released := loadChart(t)
	released.Metadata.AppVersion = "v0.2.0"
	released.Metadata.Annotations = map[string]string{
		"quarks.cloudfoundry.org/controller-image-digest": digestA,
		"quarks.cloudfoundry.org/webhook-image-digest":    digestB,
		"quarks.cloudfoundry.org/persister-image-digest":  digestC,
	}
	for _, tc := range []struct {
		name                           string
		sets                           []string
		controller, webhook, persister string
	}{
		{"defaults", nil,
			"docker.io/cfcontainerization/quarks-job:v0.2.0@" + digestA,
			"docker.io/cfcontainerization/quarks-job-webhook:v0.2.0@" + digestB,
			"docker.io/cfcontainerization/quarks-job-persister:v0.2.0@" + digestC},
		{"a tag of the user's drops the released digest", []string{"persister.image.tag=v0.1.0"},
			"docker.io/cfcontainerization/quarks-job:v0.2.0@" + digestA,
			"docker.io/cfcontainerization/quarks-job-webhook:v0.2.0@" + digestB,
			"docker.io/cfcontainerization/quarks-job-persister:v0.1.0"},
		{"a digest of the user's wins", []string{"controller.image.digest=" + digestC},
			"docker.io/cfcontainerization/quarks-job@" + digestC,
			"docker.io/cfcontainerization/quarks-job-webhook:v0.2.0@" + digestB,
			"docker.io/cfcontainerization/quarks-job-persister:v0.2.0@" + digestC},
		{"another repository keeps the released digest", []string{"webhook.image.repository=mirror.example/quarks-job-webhook"},
			"docker.io/cfcontainerization/quarks-job:v0.2.0@" + digestA,
			"mirror.example/quarks-job-webhook:v0.2.0@" + digestB,
			"docker.io/cfcontainerization/quarks-job-persister:v0.2.0@" + digestC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := renderChart(t, released, kubeVersion, tc.sets...)
			if err != nil {
				t.Fatal(err)
			}
			controller := get[*appsv1.Deployment](t, r, "Deployment", controllerName).Spec.Template.Spec.Containers[0]
			webhook := get[*appsv1.Deployment](t, r, "Deployment", webhookName).Spec.Template.Spec.Containers[0]
			for _, c := range []struct{ what, got, want string }{
				{"controller", controller.Image, tc.controller},
				{"webhook", webhook.Image, tc.webhook},
				{"persister (webhook)", args(t, webhook)["persister-image"], tc.persister},
				{"persister (controller)", args(t, controller)["persister-image"], tc.persister},
			} {
				if c.got != c.want {
					t.Errorf("%s image %q, want %q", c.what, c.got, c.want)
				}
			}
		})
	}
	// The checked-in chart is no release: its images are tags only.
	r := render(t)
	if image := get[*appsv1.Deployment](t, r, "Deployment", controllerName).Spec.Template.Spec.Containers[0].Image; strings.Contains(image, "@") {
		t.Errorf("the checked-in chart pins the controller image %s", image)
	}
}

func TestImagePullSecretsReachComponentsAndJobPods(t *testing.T) {
	r := render(t, "imagePullSecrets[0].name=regcred", "imagePullSecrets[1].name=mirror")
	want := []corev1.LocalObjectReference{{Name: "regcred"}, {Name: "mirror"}}
	for _, name := range []string{controllerName, webhookName} {
		pod := get[*appsv1.Deployment](t, r, "Deployment", name).Spec.Template.Spec
		if !reflect.DeepEqual(pod.ImagePullSecrets, want) {
			t.Errorf("%s pulls with %v, want %v", name, pod.ImagePullSecrets, want)
		}
	}
	webhook := get[*appsv1.Deployment](t, r, "Deployment", webhookName).Spec.Template.Spec.Containers[0]
	if got, _ := env(webhook, "QUARKS_WEBHOOK_PERSISTER_IMAGE_PULL_SECRETS"); got != "regcred,mirror" {
		t.Errorf("the webhook adds pull secrets %q to job pods, want regcred,mirror", got)
	}

	r = render(t)
	webhook = get[*appsv1.Deployment](t, r, "Deployment", webhookName).Spec.Template.Spec.Containers[0]
	if got, ok := env(webhook, "QUARKS_WEBHOOK_PERSISTER_IMAGE_PULL_SECRETS"); ok {
		t.Errorf("without imagePullSecrets the webhook still adds %q", got)
	}
}

// Every flag the chart passes must exist in the binary's main.go: an unknown flag stops it.
func TestArgumentsAreFlagsOfTheBinaries(t *testing.T) {
	controllerFlags := sourceFlags(t, "controller/cmd/quarks-job/main.go")
	webhookFlags := sourceFlags(t, "webhook/cmd/webhook/main.go")
	for _, sets := range [][]string{
		nil,
		{"certManager.enabled=true"},
		{"watch.mode=namespaces", "watch.namespaces={a,b}", "metrics.enabled=false"},
	} {
		r := render(t, sets...)
		for name, flags := range map[string][]string{controllerName: controllerFlags, webhookName: webhookFlags} {
			c := get[*appsv1.Deployment](t, r, "Deployment", name).Spec.Template.Spec.Containers[0]
			for flag := range args(t, c) {
				if !slices.Contains(flags, flag) {
					t.Errorf("%v: %s gets --%s, which its main.go does not define", sets, name, flag)
				}
			}
		}
	}
}

func TestRestrictedSecurityContexts(t *testing.T) {
	for _, d := range render(t).all("Deployment") {
		pod := d.Typed.(*appsv1.Deployment).Spec.Template.Spec
		psc := pod.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod security context %+v is not restricted", d.Name, psc)
		}
		if psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
			t.Errorf("%s runs as root", d.Name)
		}
		for _, c := range pod.Containers {
			sc := c.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s/%s: container security context %+v is not restricted", d.Name, c.Name, sc)
			}
			if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s/%s has no memory request or limit", d.Name, c.Name)
			}
		}
	}
}

func TestSchedulingSettingsApplyPerComponent(t *testing.T) {
	r := render(t,
		"nodeSelector.pool=system",
		"tolerations[0].key=dedicated", "tolerations[0].operator=Exists",
		"webhook.nodeSelector.pool=webhooks",
		"controller.priorityClassName=system-cluster-critical",
	)
	controller := get[*appsv1.Deployment](t, r, "Deployment", controllerName).Spec.Template.Spec
	webhook := get[*appsv1.Deployment](t, r, "Deployment", webhookName).Spec.Template.Spec
	if controller.NodeSelector["pool"] != "system" || webhook.NodeSelector["pool"] != "webhooks" {
		t.Errorf("nodeSelectors: controller %v (want the chart-wide pool=system), webhook %v (want its own pool=webhooks)", controller.NodeSelector, webhook.NodeSelector)
	}
	for name, pod := range map[string]corev1.PodSpec{controllerName: controller, webhookName: webhook} {
		if len(pod.Tolerations) != 1 || pod.Tolerations[0].Key != "dedicated" {
			t.Errorf("%s tolerations %v, want the chart-wide one", name, pod.Tolerations)
		}
	}
	if controller.PriorityClassName != "system-cluster-critical" || webhook.PriorityClassName != "" {
		t.Errorf("priority classes: controller %q, webhook %q", controller.PriorityClassName, webhook.PriorityClassName)
	}
}

// The webhook, the output endpoint and their certificates must agree on Service names, ports and
// Secrets, or nothing connects.
func TestServicesCertificatesAndEndpointsAgree(t *testing.T) {
	r := render(t)
	controller := get[*appsv1.Deployment](t, r, "Deployment", controllerName)
	webhook := get[*appsv1.Deployment](t, r, "Deployment", webhookName)
	webhookArgs := args(t, webhook.Spec.Template.Spec.Containers[0])
	controllerArgs := args(t, controller.Spec.Template.Spec.Containers[0])

	// The persister uploads to the output Service, which reaches the controller's output port.
	output := get[*corev1.Service](t, r, "Service", outputServiceName)
	wantURL := "https://" + outputServiceName + "." + releaseNS + ".svc:443/v1alpha1/output"
	if webhookArgs["output-endpoint-url"] != wantURL {
		t.Errorf("output endpoint URL %q, want %q", webhookArgs["output-endpoint-url"], wantURL)
	}
	assertServiceReaches(t, output, 443, controller, controllerArgs["output-bind-address"])

	// The API server calls the webhook Service, which reaches the webhook's port.
	service := get[*corev1.Service](t, r, "Service", webhookService)
	assertServiceReaches(t, service, 443, webhook, ":"+webhookArgs["port"])

	// The certificates the webhook issues name those Services, and the controller mounts the
	// Secret the output certificate is written to.
	if got, want := webhookArgs["output-dns-names"], outputServiceName+"."+releaseNS+".svc"; !slices.Contains(strings.Split(got, ","), want) {
		t.Errorf("--output-dns-names=%s lacks %s", got, want)
	}
	if got, want := webhookArgs["webhook-dns-names"], webhookService+"."+releaseNS+".svc"; !slices.Contains(strings.Split(got, ","), want) {
		t.Errorf("--webhook-dns-names=%s lacks %s", got, want)
	}
	if got := mountedSecret(t, controller, controllerArgs["output-cert-dir"]); got != webhookArgs["output-secret"] {
		t.Errorf("controller serves the certificate of Secret %q from --output-cert-dir, the webhook writes it to %q", got, webhookArgs["output-secret"])
	}
	if webhookArgs["manage-certificates"] != "true" {
		t.Errorf("--manage-certificates=%s without cert-manager", webhookArgs["manage-certificates"])
	}
	for _, flag := range []string{"mutating-webhook-configuration", "validating-webhook-configuration"} {
		if webhookArgs[flag] != webhookConfigName {
			t.Errorf("--%s=%s, the chart's configuration is %s", flag, webhookArgs[flag], webhookConfigName)
		}
	}
	// The webhook may update only its own Secrets and configurations.
	role := get[*rbacv1.Role](t, r, "Role", webhookName)
	for _, secret := range []string{webhookArgs["webhook-secret"], webhookArgs["output-secret"]} {
		if !grantsNamed(role.Rules, "", "secrets", "update", secret) || !grantsNamed(role.Rules, "", "secrets", "get", secret) {
			t.Errorf("webhook Role does not let it read and update Secret %s: %+v", secret, role.Rules)
		}
	}
	if grants(role.Rules, "", "secrets", "get") || grants(role.Rules, "", "secrets", "update") {
		t.Errorf("webhook Role grants get or update on every Secret: %+v", role.Rules)
	}
	clusterRole := get[*rbacv1.ClusterRole](t, r, "ClusterRole", webhookName)
	for _, resource := range []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"} {
		if !grantsNamed(clusterRole.Rules, "admissionregistration.k8s.io", resource, "update", webhookConfigName) {
			t.Errorf("webhook cannot patch its CA into %s %s: %+v", resource, webhookConfigName, clusterRole.Rules)
		}
		if grants(clusterRole.Rules, "admissionregistration.k8s.io", resource, "update") {
			t.Errorf("webhook may update every %s", resource)
		}
	}
}

func assertServiceReaches(t *testing.T, svc *corev1.Service, port int32, d *appsv1.Deployment, bindAddress string) {
	t.Helper()
	if !labelsMatch(svc.Spec.Selector, d.Spec.Template.Labels) || len(svc.Spec.Selector) == 0 {
		t.Errorf("Service %s selects %v, Deployment %s's pods are %v", svc.Name, svc.Spec.Selector, d.Name, d.Spec.Template.Labels)
	}
	for _, p := range svc.Spec.Ports {
		if p.Port != port {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == p.TargetPort.StrVal || cp.ContainerPort == p.TargetPort.IntVal {
					if got := ":" + strconv.Itoa(int(cp.ContainerPort)); got != bindAddress {
						t.Errorf("Service %s:%d reaches container port %d, the server listens on %q", svc.Name, port, cp.ContainerPort, bindAddress)
					}
					return
				}
			}
		}
		t.Errorf("Service %s port %d targets %v, which no container of %s exposes", svc.Name, port, p.TargetPort.String(), d.Name)
		return
	}
	t.Errorf("Service %s has no port %d", svc.Name, port)
}

func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// mountedSecret returns the Secret mounted at dir in the Deployment's first container.
func mountedSecret(t *testing.T, d *appsv1.Deployment, dir string) string {
	t.Helper()
	pod := d.Spec.Template.Spec
	for _, m := range pod.Containers[0].VolumeMounts {
		if m.MountPath != dir {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				return v.Secret.SecretName
			}
		}
	}
	t.Fatalf("%s mounts no Secret at %q", d.Name, dir)
	return ""
}

func grantsNamed(rules []rbacv1.PolicyRule, group, resource, verb, name string) bool {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) &&
			(len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, name)) {
			return true
		}
	}
	return false
}

func TestWebhookConfigurations(t *testing.T) {
	r := render(t)
	mutating := get[*admissionregistrationv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration", webhookConfigName)
	validating := get[*admissionregistrationv1.ValidatingWebhookConfiguration](t, r, "ValidatingWebhookConfiguration", webhookConfigName)

	var pods *admissionregistrationv1.MutatingWebhook
	for i, w := range mutating.Webhooks {
		if len(w.ClientConfig.CABundle) > 0 {
			t.Errorf("webhook %s has a caBundle rendered at template time", w.Name)
		}
		if w.ClientConfig.Service == nil || w.ClientConfig.Service.Name != webhookService || w.ClientConfig.Service.Namespace != releaseNS {
			t.Errorf("webhook %s calls %+v, want Service %s/%s", w.Name, w.ClientConfig.Service, releaseNS, webhookService)
		}
		if w.NamespaceSelector != nil {
			t.Errorf("webhook %s has namespaceSelector %v while every namespace is watched", w.Name, w.NamespaceSelector)
		}
		for _, rule := range w.Rules {
			if slices.Contains(rule.Resources, "pods") {
				pods = &mutating.Webhooks[i]
			}
		}
	}
	if pods == nil {
		t.Fatalf("no mutating webhook for pods in %+v", mutating.Webhooks)
	}
	wantSelector := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: qjobLabel, Operator: metav1.LabelSelectorOpExists}}}
	if !reflect.DeepEqual(pods.ObjectSelector, wantSelector) {
		t.Errorf("pod webhook objectSelector %v, want %v", pods.ObjectSelector, wantSelector)
	}
	// Fail closed for pods: a QuarksJob pod never runs without its persister.
	if pods.FailurePolicy == nil || *pods.FailurePolicy != admissionregistrationv1.Fail {
		t.Errorf("pod webhook failurePolicy %v, want Fail", pods.FailurePolicy)
	}
	// Fail open for QuarksJobs: an unavailable webhook must not stop users or the controller.
	for _, w := range mutating.Webhooks {
		if w.Name != pods.Name && (w.FailurePolicy == nil || *w.FailurePolicy != admissionregistrationv1.Ignore) {
			t.Errorf("QuarksJob webhook %s failurePolicy %v, want Ignore", w.Name, w.FailurePolicy)
		}
	}
	if got := pods.Rules[0].Operations; !slices.Equal(got, []admissionregistrationv1.OperationType{admissionregistrationv1.Create}) {
		t.Errorf("pod webhook operations %v, want CREATE only", got)
	}

	if len(validating.Webhooks) != 1 {
		t.Fatalf("%d validating webhooks, want 1", len(validating.Webhooks))
	}
	v := validating.Webhooks[0]
	if len(v.ClientConfig.CABundle) > 0 || v.FailurePolicy == nil || *v.FailurePolicy != admissionregistrationv1.Ignore {
		t.Errorf("validating webhook %s: caBundle %d bytes, failurePolicy %v", v.Name, len(v.ClientConfig.CABundle), v.FailurePolicy)
	}
	if len(v.Rules) != 1 || !slices.Equal(v.Rules[0].Resources, []string{"quarksjobs"}) || !slices.Equal(v.Rules[0].APIGroups, []string{"quarks.cloudfoundry.org"}) {
		t.Errorf("validating webhook rules %+v, want quarksjobs", v.Rules)
	}
	for _, o := range []metav1.Object{mutating, validating} {
		if _, ok := o.GetAnnotations()["cert-manager.io/inject-ca-from"]; ok {
			t.Errorf("%s asks cert-manager for a CA without certManager.enabled", o.GetName())
		}
	}
}

// The webhook paths must be those the webhook serves (webhook/internal/endpoints).
func TestWebhookPathsAreServed(t *testing.T) {
	src, err := os.ReadFile("../../webhook/internal/endpoints/endpoints.go")
	if err != nil {
		t.Fatal(err)
	}
	r := render(t)
	var paths []string
	for _, w := range get[*admissionregistrationv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration", webhookConfigName).Webhooks {
		paths = append(paths, *w.ClientConfig.Service.Path)
	}
	for _, w := range get[*admissionregistrationv1.ValidatingWebhookConfiguration](t, r, "ValidatingWebhookConfiguration", webhookConfigName).Webhooks {
		paths = append(paths, *w.ClientConfig.Service.Path)
	}
	if len(paths) != 3 {
		t.Errorf("%d webhooks, want 3 (pods, QuarksJob defaulting and validation)", len(paths))
	}
	for _, p := range paths {
		if !strings.Contains(string(src), `"`+p+`"`) {
			t.Errorf("webhook path %s is not served by the webhook", p)
		}
	}
}

// The controller must be granted what its +kubebuilder:rbac markers ask for: cluster-wide when it
// watches every namespace, in each listed namespace (and nothing namespaced cluster-wide) when it
// watches a list.
func TestControllerRBACCoversItsMarkers(t *testing.T) {
	markers := rbacMarkers(t, "controller")

	t.Run("all namespaces", func(t *testing.T) {
		r := render(t)
		role := get[*rbacv1.ClusterRole](t, r, "ClusterRole", controllerName+"-controller")
		assertMarkersGranted(t, markers, role.Rules, false)
		binding := get[*rbacv1.ClusterRoleBinding](t, r, "ClusterRoleBinding", controllerName+"-controller")
		assertBinds(t, binding.RoleRef, binding.Subjects, "ClusterRole", role.Name, controllerName)
		if n := len(r.all("Role")); n != 2 {
			t.Errorf("%d Roles, want the leader election's and the webhook's", n)
		}
	})

	t.Run("namespace list", func(t *testing.T) {
		r := render(t, "watch.mode=namespaces", "watch.namespaces={team-a,team-b}")
		for _, ns := range []string{"team-a", "team-b"} {
			var role *rbacv1.Role
			for _, o := range r.all("Role") {
				if o.Namespace == ns {
					role = o.Typed.(*rbacv1.Role)
				}
			}
			if role == nil {
				t.Fatalf("no Role in %s: %v", ns, r.names())
			}
			assertMarkersGranted(t, markers, role.Rules, true)
			var bound bool
			for _, o := range r.all("RoleBinding") {
				if b := o.Typed.(*rbacv1.RoleBinding); b.Namespace == ns {
					assertBinds(t, b.RoleRef, b.Subjects, "Role", role.Name, controllerName)
					bound = true
				}
			}
			if !bound {
				t.Errorf("no RoleBinding in %s", ns)
			}
		}
		cluster := get[*rbacv1.ClusterRole](t, r, "ClusterRole", controllerName+"-controller")
		for _, m := range markers {
			for _, g := range m.groups {
				for _, res := range m.resources {
					if res == "namespaces" {
						continue // read only to match watch.namespaceSelector, never set in list mode
					}
					if clusterScoped[res] {
						if !grants(cluster.Rules, g, res, m.verbs[0]) {
							t.Errorf("cluster-scoped %s not granted cluster-wide", res)
						}
						continue
					}
					for _, verb := range m.verbs {
						if grants(cluster.Rules, g, res, verb) {
							t.Errorf("ClusterRole grants %s %s cluster-wide while only listed namespaces are watched", verb, res)
						}
					}
				}
			}
		}
		controller := get[*appsv1.Deployment](t, r, "Deployment", controllerName).Spec.Template.Spec.Containers[0]
		if got := args(t, controller)["watch-namespaces"]; got != "team-a,team-b" {
			t.Errorf("--watch-namespaces=%q, want team-a,team-b", got)
		}
	})

	t.Run("leader election", func(t *testing.T) {
		r := render(t, "watch.mode=namespaces", "watch.namespaces={team-a}")
		role := get[*rbacv1.Role](t, r, "Role", controllerName+"-leader-election")
		if role.Namespace != releaseNS || !grants(role.Rules, "coordination.k8s.io", "leases", "update") {
			t.Errorf("leader election Role in %s grants %+v", role.Namespace, role.Rules)
		}
	})
}

func assertMarkersGranted(t *testing.T, markers []rbacMarker, rules []rbacv1.PolicyRule, namespacedOnly bool) {
	t.Helper()
	for _, m := range markers {
		for _, g := range m.groups {
			for _, res := range m.resources {
				if namespacedOnly && clusterScoped[res] {
					continue
				}
				for _, verb := range m.verbs {
					if !grants(rules, g, res, verb) {
						t.Errorf("%s needs %s on %s.%s; not granted", m.file, verb, res, g)
					}
				}
			}
		}
	}
}

func assertBinds(t *testing.T, ref rbacv1.RoleRef, subjects []rbacv1.Subject, kind, name, serviceAccount string) {
	t.Helper()
	if ref.Kind != kind || ref.Name != name {
		t.Errorf("binding refers to %s %s, want %s %s", ref.Kind, ref.Name, kind, name)
	}
	want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: serviceAccount, Namespace: releaseNS}}
	if !reflect.DeepEqual(subjects, want) {
		t.Errorf("binding subjects %+v, want %+v", subjects, want)
	}
}

func TestNamespaceListScopesTheWebhooks(t *testing.T) {
	r := render(t, "watch.mode=namespaces", "watch.namespaces={team-a,team-b}")
	want := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: []string{"team-a", "team-b"},
	}}}
	assertWebhookNamespaceSelector(t, r, want)
	if !strings.Contains(r.notes, "kubectl -n team-a apply") {
		t.Errorf("NOTES do not show the first example in the first watched namespace:\n%s", r.notes)
	}
}

func TestLabelSelectorScopesTheWebhooks(t *testing.T) {
	t.Run("the original's monitored label", func(t *testing.T) {
		r := render(t, "watch.mode=selector")
		want := &metav1.LabelSelector{MatchLabels: map[string]string{monitoredLabel: releaseName}}
		assertWebhookNamespaceSelector(t, r, want)
		controller := get[*appsv1.Deployment](t, r, "Deployment", controllerName).Spec.Template.Spec.Containers[0]
		if got, _ := env(controller, "QUARKS_JOB_WATCH_NAMESPACE_SELECTOR"); got != monitoredLabel+"="+releaseName {
			t.Errorf("controller's namespace selector %q", got)
		}
		if !strings.Contains(r.notes, "kubectl label namespace default "+monitoredLabel+"="+releaseName) {
			t.Errorf("NOTES do not say how to label a namespace:\n%s", r.notes)
		}
		// Namespaces may be labeled at any time: the permissions are cluster-wide.
		role := get[*rbacv1.ClusterRole](t, r, "ClusterRole", controllerName+"-controller")
		if !grants(role.Rules, "", "secrets", "create") || !grants(role.Rules, "", "namespaces", "watch") {
			t.Errorf("ClusterRole with a namespace selector: %+v", role.Rules)
		}
	})
	t.Run("monitoredID", func(t *testing.T) {
		r := render(t, "watch.mode=selector", "watch.monitoredID=cfo")
		assertWebhookNamespaceSelector(t, r, &metav1.LabelSelector{MatchLabels: map[string]string{monitoredLabel: "cfo"}})
	})
	t.Run("own selector", func(t *testing.T) {
		r := render(t, "watch.mode=selector",
			"watch.namespaceSelector.matchExpressions[0].key=team",
			"watch.namespaceSelector.matchExpressions[0].operator=In",
			"watch.namespaceSelector.matchExpressions[0].values={a,b}")
		want := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}}}
		assertWebhookNamespaceSelector(t, r, want)
		controller := get[*appsv1.Deployment](t, r, "Deployment", controllerName).Spec.Template.Spec.Containers[0]
		if got, _ := env(controller, "QUARKS_JOB_WATCH_NAMESPACE_SELECTOR"); got != "team in (a,b)" {
			t.Errorf("controller's namespace selector %q, want %q", got, "team in (a,b)")
		}
	})
}

func assertWebhookNamespaceSelector(t *testing.T, r *rendered, want *metav1.LabelSelector) {
	t.Helper()
	mutating := get[*admissionregistrationv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration", webhookConfigName)
	for _, w := range mutating.Webhooks {
		if !reflect.DeepEqual(w.NamespaceSelector, want) {
			t.Errorf("webhook %s namespaceSelector %v, want %v", w.Name, w.NamespaceSelector, want)
		}
		if w.ObjectSelector != nil && !reflect.DeepEqual(w.ObjectSelector.MatchExpressions, []metav1.LabelSelectorRequirement{{Key: qjobLabel, Operator: metav1.LabelSelectorOpExists}}) {
			t.Errorf("webhook %s objectSelector changed: %v", w.Name, w.ObjectSelector)
		}
	}
	for _, w := range get[*admissionregistrationv1.ValidatingWebhookConfiguration](t, r, "ValidatingWebhookConfiguration", webhookConfigName).Webhooks {
		if !reflect.DeepEqual(w.NamespaceSelector, want) {
			t.Errorf("webhook %s namespaceSelector %v, want %v", w.Name, w.NamespaceSelector, want)
		}
	}
}

func TestCertManager(t *testing.T) {
	r := render(t, "certManager.enabled=true")
	if got := r.kinds(); got["Issuer"] != 2 || got["Certificate"] != 3 {
		t.Errorf("cert-manager objects %v, want 2 Issuers (self-signed, CA) and 3 Certificates (CA, webhook, output)", got)
	}
	// The webhook keeps no certificates itself, so it needs no permissions.
	for _, kind := range []string{"Role", "ClusterRole"} {
		if _, ok := r.find(kind, webhookName); ok {
			t.Errorf("%s %s rendered with cert-manager", kind, webhookName)
		}
	}

	certs := map[string]map[string]any{}
	for _, c := range r.all("Certificate") {
		spec := c.Raw["spec"].(map[string]any)
		certs[c.Name] = spec
	}
	webhookCert, outputCert := certs[controllerName+"-webhook"], certs[controllerName+"-output"]
	if webhookCert == nil || outputCert == nil {
		t.Fatalf("Certificates %v lack the webhook's or the output endpoint's", slices.Collect(maps.Keys(certs)))
	}
	// Both are signed by the same CA: the persister trusts the output endpoint with the webhook's ca.crt.
	if !reflect.DeepEqual(webhookCert["issuerRef"], outputCert["issuerRef"]) {
		t.Errorf("webhook and output certificates come from different issuers: %v, %v", webhookCert["issuerRef"], outputCert["issuerRef"])
	}
	caIssuer := webhookCert["issuerRef"].(map[string]any)["name"].(string)
	issuer, ok := r.find("Issuer", caIssuer)
	if !ok || issuer.Raw["spec"].(map[string]any)["ca"] == nil {
		t.Errorf("the certificates' issuer %s is not a rendered CA Issuer", caIssuer)
	}
	if !slices.Contains(toStrings(webhookCert["dnsNames"]), webhookService+"."+releaseNS+".svc") ||
		!slices.Contains(toStrings(outputCert["dnsNames"]), outputServiceName+"."+releaseNS+".svc") {
		t.Errorf("dnsNames: webhook %v, output %v", webhookCert["dnsNames"], outputCert["dnsNames"])
	}

	webhook := get[*appsv1.Deployment](t, r, "Deployment", webhookName)
	webhookArgs := args(t, webhook.Spec.Template.Spec.Containers[0])
	if webhookArgs["manage-certificates"] != "false" {
		t.Errorf("--manage-certificates=%s with cert-manager", webhookArgs["manage-certificates"])
	}
	if got := mountedSecret(t, webhook, webhookArgs["cert-dir"]); got != webhookCert["secretName"] {
		t.Errorf("webhook serves Secret %q, cert-manager writes %v", got, webhookCert["secretName"])
	}
	controller := get[*appsv1.Deployment](t, r, "Deployment", controllerName)
	if got := mountedSecret(t, controller, args(t, controller.Spec.Template.Spec.Containers[0])["output-cert-dir"]); got != outputCert["secretName"] {
		t.Errorf("controller serves Secret %q, cert-manager writes %v", got, outputCert["secretName"])
	}

	wantInject := releaseNS + "/" + controllerName + "-webhook"
	mutating := get[*admissionregistrationv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration", webhookConfigName)
	validating := get[*admissionregistrationv1.ValidatingWebhookConfiguration](t, r, "ValidatingWebhookConfiguration", webhookConfigName)
	for _, o := range []metav1.Object{mutating, validating} {
		if got := o.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != wantInject {
			t.Errorf("%s inject-ca-from %q, want %q", o.GetName(), got, wantInject)
		}
	}
	for _, w := range mutating.Webhooks {
		if len(w.ClientConfig.CABundle) > 0 {
			t.Errorf("webhook %s has a caBundle rendered at template time", w.Name)
		}
	}

	t.Run("own issuer", func(t *testing.T) {
		r := render(t, "certManager.enabled=true", "certManager.issuerRef.name=corp-ca", "certManager.issuerRef.kind=ClusterIssuer")
		if n := len(r.all("Issuer")); n != 0 {
			t.Errorf("%d Issuers rendered with an issuerRef", n)
		}
		if n := len(r.all("Certificate")); n != 2 {
			t.Errorf("%d Certificates, want the webhook's and the output endpoint's", n)
		}
		for _, c := range r.all("Certificate") {
			ref := c.Raw["spec"].(map[string]any)["issuerRef"].(map[string]any)
			if ref["name"] != "corp-ca" || ref["kind"] != "ClusterIssuer" {
				t.Errorf("Certificate %s issued by %v", c.Name, ref)
			}
		}
	})
}

func toStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, s := range list {
		out = append(out, s.(string))
	}
	return out
}

func TestCRDs(t *testing.T) {
	generated, err := filepath.Glob(filepath.Join(chartDir, "files/crds/*.yaml"))
	if err != nil || len(generated) == 0 {
		t.Fatalf("no generated CRDs: %v", err)
	}
	r := render(t)
	crds := r.all("CustomResourceDefinition")
	if len(crds) != len(generated) {
		t.Fatalf("%d CRDs rendered, %d generated", len(crds), len(generated))
	}
	for _, file := range generated {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		want := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, want); err != nil {
			t.Fatal(err)
		}
		got := get[*apiextensionsv1.CustomResourceDefinition](t, r, "CustomResourceDefinition", want.Name)
		if !reflect.DeepEqual(got.Spec, want.Spec) {
			t.Errorf("rendered CRD %s differs from %s", want.Name, file)
		}
		if got.Annotations["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s is not kept on uninstall: %v", got.Name, got.Annotations)
		}
		for k, v := range want.Annotations {
			if got.Annotations[k] != v {
				t.Errorf("CRD %s lost annotation %s=%s", got.Name, k, v)
			}
		}
	}

	r = render(t, "crds.keep=false")
	for _, crd := range r.all("CustomResourceDefinition") {
		if _, ok := crd.Typed.(*apiextensionsv1.CustomResourceDefinition).Annotations["helm.sh/resource-policy"]; ok {
			t.Errorf("crds.keep=false still keeps %s", crd.Name)
		}
	}

	r = render(t, "crds.enabled=false")
	if n := len(r.all("CustomResourceDefinition")); n != 0 {
		t.Errorf("crds.enabled=false renders %d CRDs", n)
	}
	if n := len(r.objects); n != 21 {
		t.Errorf("crds.enabled=false renders %d objects, want the 21 besides the CRD", n)
	}
}

func TestMetrics(t *testing.T) {
	r := render(t, "metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prom")
	monitors := r.all("ServiceMonitor")
	if len(monitors) != 1 {
		t.Fatalf("%d ServiceMonitors, want 1", len(monitors))
	}
	spec := monitors[0].Raw["spec"].(map[string]any)
	selector := spec["selector"].(map[string]any)["matchLabels"].(map[string]any)
	selected := 0
	for _, o := range r.all("Service") {
		svc := o.Typed.(*corev1.Service)
		matches := true
		for k, v := range selector {
			if svc.Labels[k] != v {
				matches = false
			}
		}
		if matches {
			selected++
			if svc.Spec.Ports[0].Name != "metrics" {
				t.Errorf("ServiceMonitor selects %s, which has no metrics port", svc.Name)
			}
		}
	}
	if selected != 2 {
		t.Errorf("ServiceMonitor selects %d Services, want the controller's and the webhook's metrics Services", selected)
	}
	if labels := monitors[0].Raw["metadata"].(map[string]any)["labels"].(map[string]any); labels["release"] != "prom" {
		t.Errorf("ServiceMonitor labels %v lack release=prom", labels)
	}

	r = render(t, "metrics.enabled=false")
	if got := r.kinds()["Service"]; got != 2 {
		t.Errorf("metrics.enabled=false renders %d Services, want the output endpoint's and the webhook's", got)
	}
	controller := get[*appsv1.Deployment](t, r, "Deployment", controllerName).Spec.Template.Spec.Containers[0]
	if got := args(t, controller)["metrics-bind-address"]; got != "0" {
		t.Errorf("metrics.enabled=false: --metrics-bind-address=%s", got)
	}
}

func TestServiceAccountsAndRBACCanBeLeftOut(t *testing.T) {
	r := render(t, "serviceAccount.create=false", "serviceAccount.controllerName=ops-qjob", "serviceAccount.webhookName=ops-webhook", "rbac.create=false")
	for _, kind := range []string{"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} {
		if n := len(r.all(kind)); n != 0 {
			t.Errorf("%d %ss rendered", n, kind)
		}
	}
	if got := get[*appsv1.Deployment](t, r, "Deployment", controllerName).Spec.Template.Spec.ServiceAccountName; got != "ops-qjob" {
		t.Errorf("controller runs as %q", got)
	}
	if got := get[*appsv1.Deployment](t, r, "Deployment", webhookName).Spec.Template.Spec.ServiceAccountName; got != "ops-webhook" {
		t.Errorf("webhook runs as %q", got)
	}
}

func TestReplicas(t *testing.T) {
	r := render(t, "controller.replicas=3", "webhook.replicas=4")
	if got := *get[*appsv1.Deployment](t, r, "Deployment", controllerName).Spec.Replicas; got != 3 {
		t.Errorf("controller replicas %d, want 3", got)
	}
	if got := *get[*appsv1.Deployment](t, r, "Deployment", webhookName).Spec.Replicas; got != 4 {
		t.Errorf("webhook replicas %d, want 4", got)
	}
}

func TestNotesShowTheFirstExample(t *testing.T) {
	r := render(t)
	for _, want := range []string{"kind: QuarksJob", "strategy: once", "/mnt/quarks/output.json", "kubectl -n default get qjob", "rollout status deployment/" + webhookName} {
		if !strings.Contains(r.notes, want) {
			t.Errorf("NOTES lack %q:\n%s", want, r.notes)
		}
	}
}

// admissionPolicyName names the ValidatingAdmissionPolicy and its binding.
const admissionPolicyName = controllerName + "-reserved-metadata"

// The ValidatingAdmissionPolicy that keeps quarks-job's run and output metadata to the controller
// and the Job controller. What it admits and refuses on a real API server: admission_policy_test.go.
func TestAdmissionPolicyRendering(t *testing.T) {
	r := render(t)
	policy := get[*admissionregistrationv1.ValidatingAdmissionPolicy](t, r, "ValidatingAdmissionPolicy", admissionPolicyName)
	binding := get[*admissionregistrationv1.ValidatingAdmissionPolicyBinding](t, r, "ValidatingAdmissionPolicyBinding", admissionPolicyName)
	if binding.Spec.PolicyName != policy.Name || !slices.Equal(binding.Spec.ValidationActions, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}) {
		t.Errorf("binding %s: policy %q, actions %v; want %q, [Deny]", binding.Name, binding.Spec.PolicyName, binding.Spec.ValidationActions, policy.Name)
	}
	if binding.Spec.MatchResources != nil && binding.Spec.MatchResources.NamespaceSelector != nil {
		t.Errorf("binding selects namespaces %v while every namespace is watched", binding.Spec.MatchResources.NamespaceSelector)
	}
	if policy.Spec.FailurePolicy == nil || *policy.Spec.FailurePolicy != admissionregistrationv1.Fail {
		t.Errorf("policy failurePolicy %v, want Fail", policy.Spec.FailurePolicy)
	}
	if got := policyVariable(t, policy, "controller"); got != "'system:serviceaccount:"+releaseNS+":"+controllerName+"'" {
		t.Errorf("the policy takes the controller for %s", got)
	}
	// Exactly the reserved keys, never the whole quarks.cloudfoundry.org/ prefix: other operators'
	// labels (quarks.cloudfoundry.org/deployment-name) must keep working.
	var expressions []string
	for _, c := range policy.Spec.MatchConditions {
		expressions = append(expressions, c.Expression)
	}
	for _, v := range policy.Spec.Variables {
		expressions = append(expressions, v.Expression)
	}
	text := strings.Join(expressions, "\n")
	for _, key := range []string{
		qjv1.LabelQJobName, qjv1.LabelRun, qjv1.LabelPersistentSecretContainer, qjv1.LabelSecretKind, qjv1.LabelSecretVersion,
		qjv1.AnnotationRunTrigger, qjv1.AnnotationInputsHash, qjv1.AnnotationOutputSpec, qjv1.AnnotationOutputFiles, qjv1.AnnotationOutputResult,
	} {
		if !strings.Contains(text, `"`+key+`"`) {
			t.Errorf("the policy does not name %s", key)
		}
	}
	if strings.Contains(text, "startsWith('quarks.cloudfoundry.org/')") || strings.Contains(text, `"quarks.cloudfoundry.org/"`) {
		t.Errorf("the policy matches the whole quarks.cloudfoundry.org/ prefix:\n%s", text)
	}
	var resources []string
	for _, rule := range policy.Spec.MatchConstraints.ResourceRules {
		resources = append(resources, rule.Resources...)
		if !slices.Equal(rule.Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}) {
			t.Errorf("policy rule for %v on %v, want CREATE and UPDATE", rule.Resources, rule.Operations)
		}
	}
	if slices.Sort(resources); !slices.Equal(resources, []string{"jobs", "pods", "secrets"}) {
		t.Errorf("policy matches %v, want jobs, pods and secrets", resources)
	}

	t.Run("exempt users and groups reach the expression", func(t *testing.T) {
		r := render(t, "admissionPolicy.exemptUsers={system:serviceaccount:quarks:quarks-secret,velero}", "admissionPolicy.exemptGroups={backup-operators}")
		policy := get[*admissionregistrationv1.ValidatingAdmissionPolicy](t, r, "ValidatingAdmissionPolicy", admissionPolicyName)
		var notExempt string
		for _, c := range policy.Spec.MatchConditions {
			if c.Name == "not-exempt" {
				notExempt = c.Expression
			}
		}
		for _, want := range []string{
			`["system:serviceaccount:kube-system:generic-garbage-collector","system:serviceaccount:quarks:quarks-secret","velero"]`,
			`["backup-operators"]`,
		} {
			if !strings.Contains(notExempt, want) {
				t.Errorf("matchCondition not-exempt lacks %s:\n%s", want, notExempt)
			}
		}
	})

	t.Run("own controller service account", func(t *testing.T) {
		r := render(t, "serviceAccount.create=false", "serviceAccount.controllerName=ops-qjob")
		policy := get[*admissionregistrationv1.ValidatingAdmissionPolicy](t, r, "ValidatingAdmissionPolicy", admissionPolicyName)
		if got := policyVariable(t, policy, "controller"); got != "'system:serviceaccount:"+releaseNS+":ops-qjob'" {
			t.Errorf("the policy takes the controller for %s, it runs as ops-qjob", got)
		}
	})

	t.Run("the watched namespaces only", func(t *testing.T) {
		r := render(t, "watch.mode=namespaces", "watch.namespaces={team-a,team-b}")
		binding := get[*admissionregistrationv1.ValidatingAdmissionPolicyBinding](t, r, "ValidatingAdmissionPolicyBinding", admissionPolicyName)
		want := get[*admissionregistrationv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration", webhookConfigName).Webhooks[0].NamespaceSelector
		if binding.Spec.MatchResources == nil || !reflect.DeepEqual(binding.Spec.MatchResources.NamespaceSelector, want) {
			t.Errorf("binding matches %+v, want the webhooks' namespaceSelector %v", binding.Spec.MatchResources, want)
		}
	})

	t.Run("disabled", func(t *testing.T) {
		r := render(t, "admissionPolicy.enabled=false")
		for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
			if n := len(r.all(kind)); n != 0 {
				t.Errorf("admissionPolicy.enabled=false renders %d %ss", n, kind)
			}
		}
		if n := len(r.objects); n != 20 {
			t.Errorf("admissionPolicy.enabled=false renders %d objects, want the 20 besides the policy and its binding", n)
		}
	})

	t.Run("Kubernetes 1.29", func(t *testing.T) {
		v129 := &chartutil.KubeVersion{Version: "v1.29.4", Major: "1", Minor: "29"}
		_, err := renderFor(t, v129)
		if err == nil || !strings.Contains(err.Error(), "set admissionPolicy.enabled=false") {
			t.Errorf("rendering for Kubernetes 1.29 with the policy: %v, want a message saying to turn it off", err)
		}
		if _, err := renderFor(t, v129, "admissionPolicy.enabled=false"); err != nil {
			t.Errorf("rendering for Kubernetes 1.29 without the policy: %v", err)
		}
	})
}

func policyVariable(t *testing.T, policy *admissionregistrationv1.ValidatingAdmissionPolicy, name string) string {
	t.Helper()
	for _, v := range policy.Spec.Variables {
		if v.Name == name {
			return v.Expression
		}
	}
	t.Fatalf("policy %s has no variable %q", policy.Name, name)
	return ""
}
