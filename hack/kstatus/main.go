// Command kstatus prints the health that GitOps tools compute for Kubernetes objects.
//
// It reads objects on stdin (JSON or YAML: one object, a List, or several YAML documents) and
// writes a JSON array with one entry per object: its kind, namespace and name, and the status
// and message that the real kstatus library (sigs.k8s.io/cli-utils/pkg/kstatus/status) gives
// it: InProgress, Failed, Current, Terminating, NotFound or Unknown.
//
// With --flux-health-checks FILE it instead evaluates the objects the way Flux's
// kustomize-controller does for a Kustomization's spec.healthCheckExprs: FILE holds that list
// (apiVersion, kind, inProgress, failed, current), and each object is read by Flux's own CEL
// status reader (github.com/fluxcd/pkg/runtime/cel). An expression that fails to evaluate
// makes the status Unknown with the error as message, as in Flux.
//
// labelloop's tests feed it the statuses the operator writes (tests/unit/test_gitops_status.py).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/fluxcd/pkg/apis/kustomize"
	fluxcel "github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

// Health is what is printed for each object.
type Health struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Message    string `json:"message"`
}

func main() {
	checksFile := flag.String("flux-health-checks", "",
		"a YAML list of Flux health check expressions (a Kustomization's spec.healthCheckExprs);"+
			" evaluate those instead of kstatus")
	flag.Parse()
	if err := run(os.Stdin, os.Stdout, *checksFile); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer, checksFile string) error {
	objects, err := readObjects(in)
	if err != nil {
		return err
	}
	compute := kstatusHealth
	if checksFile != "" {
		if compute, err = fluxHealth(checksFile); err != nil {
			return err
		}
	}
	healths := make([]Health, 0, len(objects))
	for _, u := range objects {
		state, message, err := compute(u)
		if err != nil {
			return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
		}
		healths = append(healths, Health{
			APIVersion: u.GetAPIVersion(),
			Kind:       u.GetKind(),
			Namespace:  u.GetNamespace(),
			Name:       u.GetName(),
			Status:     state,
			Message:    message,
		})
	}
	encoder := json.NewEncoder(out)
	encoder.SetIndent("", "  ")
	return encoder.Encode(healths)
}

type healthFunc func(u *unstructured.Unstructured) (state, message string, err error)

func kstatusHealth(u *unstructured.Unstructured) (string, string, error) {
	result, err := status.Compute(u)
	if err != nil {
		return "", "", err
	}
	return string(result.Status), result.Message, nil
}

// fluxHealth reads the health checks and returns Flux's CEL status reader as a healthFunc.
func fluxHealth(path string) (healthFunc, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	asJSON, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var checks []kustomize.CustomHealthCheck
	decoder := json.NewDecoder(bytes.NewReader(asJSON))
	decoder.DisallowUnknownFields() // a misspelt field would silently never be evaluated
	if err := decoder.Decode(&checks); err != nil {
		return nil, fmt.Errorf("%s is not a list of health check expressions: %w", path, err)
	}
	newReader, err := fluxcel.NewStatusReader(checks)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// Reading the status of an object in hand needs neither a REST mapper nor a cluster.
	reader := newReader(nil)
	return func(u *unstructured.Unstructured) (string, string, error) {
		result, err := reader.ReadStatusForObject(context.Background(), nil, u)
		if err != nil { // no health check for the object's kind
			return "", "", err
		}
		message := result.Message
		if result.Error != nil {
			message = result.Error.Error()
		}
		return result.Status.String(), message, nil
	}, nil
}

// readObjects decodes every object on `in`, expanding Lists into their items. Objects are
// decoded as the API machinery decodes them (whole numbers as int64), as kstatus expects.
func readObjects(in io.Reader) ([]*unstructured.Unstructured, error) {
	decoder := utilyaml.NewYAMLOrJSONDecoder(in, 4096)
	var objects []*unstructured.Unstructured
	for {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return objects, nil
			}
			return nil, err
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
			continue // an empty YAML document
		}
		decoded, _, err := unstructured.UnstructuredJSONScheme.Decode(raw, nil, nil)
		if err != nil {
			return nil, err
		}
		switch found := decoded.(type) {
		case *unstructured.UnstructuredList:
			for i := range found.Items {
				objects = append(objects, &found.Items[i])
			}
		case *unstructured.Unstructured:
			objects = append(objects, found)
		default:
			return nil, fmt.Errorf("not an object: %T", decoded)
		}
	}
}
