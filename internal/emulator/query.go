package emulator

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The two AWS Query protocol services served beside the EBS direct APIs,
// for the chain-of-custody record: EC2 DescribeSnapshots (ec2.go) and STS
// GetCallerIdentity (sts.go). Both POST a form to "/" (GET with a query
// string also works); the EBS direct APIs never use that path.
const (
	serviceEC2 = "ec2"
	serviceSTS = "sts"
)

// Operation names of the Query services, as counters and logs use them.
const (
	OpDescribeSnapshots         = "DescribeSnapshots"
	OpGetCallerIdentity         = "GetCallerIdentity"
	OpDescribeInstances         = "DescribeInstances"
	OpDescribeVolumes           = "DescribeVolumes"
	OpCreateSnapshots           = "CreateSnapshots"
	OpCreateSnapshot            = "CreateSnapshot"
	OpCopySnapshot              = "CopySnapshot"
	OpModifySnapshotAttribute   = "ModifySnapshotAttribute"
	OpDescribeSnapshotAttribute = "DescribeSnapshotAttribute"
	OpLockSnapshot              = "LockSnapshot"
	OpDescribeLockedSnapshots   = "DescribeLockedSnapshots"
	OpCreateTags                = "CreateTags"
	OpDeleteSnapshot            = "DeleteSnapshot"
)

// ec2Handler answers one EC2 action from its form, given the request id
// and the region of the request's SigV4 scope.
type ec2Handler func(s *Server, form url.Values, reqID, region string) ([]byte, *queryError)

// ec2Actions are the EC2 actions served, by name. Every other action is
// counted as OpUnknown.
var ec2Actions = map[string]ec2Handler{
	OpDescribeSnapshots: func(s *Server, form url.Values, reqID, _ string) ([]byte, *queryError) {
		return s.describeSnapshots(form, reqID)
	},
	OpDescribeSnapshotAttribute: (*Server).describeSnapshotAttribute,
	OpDescribeInstances:         (*Server).describeInstances,
	OpDescribeVolumes:           (*Server).describeVolumes,
	OpCreateSnapshot:            (*Server).createSnapshot,
	OpCreateSnapshots:           (*Server).createSnapshots,
	OpCopySnapshot:              (*Server).copySnapshot,
	OpModifySnapshotAttribute:   (*Server).modifySnapshotAttribute,
	OpLockSnapshot:              (*Server).lockSnapshot,
	OpDescribeLockedSnapshots:   (*Server).describeLockedSnapshots,
	OpCreateTags:                (*Server).createTags,
	OpDeleteSnapshot:            (*Server).deleteSnapshot,
}

// maxQueryBody bounds a Query request body: a DescribeSnapshots form with
// a thousand snapshot ids and filters is far below it.
const maxQueryBody = 1 << 20

// queryError is an error of a Query service: the HTTP status, the error
// code and message, rendered in the service's own XML envelope.
type queryError struct {
	status  int
	code    string
	message string
}

// isQuery reports whether r is for a Query service rather than the EBS
// direct APIs, which address everything under /snapshots.
func isQuery(r *http.Request) bool { return r.URL.Path == "/" }

// serveQuery answers a Query protocol request. The service is the SigV4
// credential scope's when that names EC2 or STS, else the one the Action
// belongs to.
func (s *Server) serveQuery(w http.ResponseWriter, r *http.Request, reqID string, start time.Time) {
	r.Body = http.MaxBytesReader(w, r.Body, maxQueryBody)
	formErr := r.ParseForm()
	action := r.Form.Get("Action")
	scope, region, authErr := queryScope(r)
	service := scope
	if service != serviceEC2 && service != serviceSTS {
		service = serviceEC2 // EC2 answers what it does not know, as the default endpoint would
		if action == OpGetCallerIdentity {
			service = serviceSTS
		}
	}
	op := action
	handler := ec2Actions[action]
	if handler == nil && op != OpGetCallerIdentity {
		op = OpUnknown
	}
	var (
		body []byte
		qe   *queryError
	)
	switch {
	case formErr != nil:
		qe = &queryError{http.StatusBadRequest, "MalformedQueryString", "The request body is not a valid form: " + formErr.Error()}
	case authErr != nil:
		qe = authErr
	case scope != service:
		qe = &queryError{http.StatusForbidden, "SignatureDoesNotMatch",
			"Credential should be scoped to correct service: '" + service + "'."}
	case service == serviceEC2 && handler != nil:
		body, qe = handler(s, r.Form, reqID, region)
	case service == serviceSTS && action == OpGetCallerIdentity:
		body, qe = s.getCallerIdentity(r.Form, reqID)
	case action == "":
		qe = &queryError{http.StatusBadRequest, "MissingAction", "The request must contain the parameter Action."}
	default:
		qe = &queryError{http.StatusBadRequest, "InvalidAction",
			"The action " + action + " is not valid for this web service."}
	}
	outcome := OutcomeOK
	if qe != nil {
		outcome = qe.code
		body = errorXML(service, qe, reqID)
	}
	s.ctr.add(op, outcome)
	status := http.StatusOK
	if qe != nil {
		status = qe.status
	}
	h := w.Header()
	h.Set("Content-Type", "text/xml;charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body) //nolint:errcheck // the client is gone; nothing to do
	if s.o.Logf != nil {
		s.o.Logf("%s %s %s: %s in %s", r.Method, op, service, outcome, time.Since(start).Round(time.Microsecond))
	}
}

// queryScope returns the service and region of the request's SigV4
// credential scope. As for the EBS direct APIs, the signature is required
// but not checked.
func queryScope(r *http.Request) (service, region string, qe *queryError) {
	h := r.Header.Get("Authorization")
	service, missing, problem := sigV4Scope(h)
	switch {
	case missing:
		return "", "", &queryError{http.StatusBadRequest, "MissingAuthenticationToken", "Request is missing Authentication Token"}
	case problem != "":
		return "", "", &queryError{http.StatusBadRequest, "IncompleteSignature", problem}
	}
	return service, sigV4Region(h), nil
}

// sigV4Region returns the region of a well-formed SigV4 Authorization
// header's credential scope (AKID/DATE/REGION/SERVICE/aws4_request).
func sigV4Region(h string) string {
	_, cred, _ := strings.Cut(h, "Credential=")
	cred, _, _ = strings.Cut(cred, ",")
	if scope := strings.Split(strings.TrimSpace(cred), "/"); len(scope) == 5 {
		return scope[2]
	}
	return ""
}

// authorize refuses an action named by Options.DenyEC2 as EC2 refuses an
// action no policy allows.
func (s *Server) authorize(action string) *queryError {
	if !slices.Contains(s.o.DenyEC2, action) {
		return nil
	}
	return &queryError{http.StatusForbidden, "UnauthorizedOperation", fmt.Sprintf(
		"You are not authorized to perform this operation. User: %s is not authorized to perform: "+
			"ec2:%s because no identity-based policy allows the ec2:%s action", s.identity().ARN, action, action)}
}

// errorXML renders qe as the service's error document: EC2's
// <Response><Errors><Error>… or the Query protocol's <ErrorResponse>.
func errorXML(service string, qe *queryError, reqID string) []byte {
	if service == serviceSTS {
		typ := "Sender"
		if qe.status >= 500 {
			typ = "Receiver"
		}
		return marshalXML(stsErrorResponse{
			Error:     stsError{Type: typ, Code: qe.code, Message: qe.message},
			RequestID: reqID,
		})
	}
	return marshalXML(ec2ErrorResponse{
		Errors:    []ec2Error{{Code: qe.code, Message: qe.message}},
		RequestID: reqID,
	})
}

type ec2ErrorResponse struct {
	XMLName   xml.Name   `xml:"Response"`
	Errors    []ec2Error `xml:"Errors>Error"`
	RequestID string     `xml:"RequestID"`
}

type ec2Error struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

type stsErrorResponse struct {
	XMLName   xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ ErrorResponse"`
	Error     stsError `xml:"Error"`
	RequestID string   `xml:"RequestId"`
}

type stsError struct {
	Type    string `xml:"Type"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

// marshalXML renders v after the XML declaration AWS sends.
func marshalXML(v any) []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	if err := xml.NewEncoder(&b).Encode(v); err != nil { // the response types always encode
		panic(err)
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// parseBool reads a Query boolean ("true" or "false", any case).
func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}
