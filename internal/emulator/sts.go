package emulator

import (
	"encoding/xml"
	"net/http"
	"net/url"
)

// Identity is the caller STS GetCallerIdentity reports. A zero field takes
// its value from DefaultIdentity.
type Identity struct {
	Account string
	ARN     string
	UserID  string
}

// DefaultIdentity is an IAM user in the account of the AWS documentation's
// examples, 111122223333; the user id has the AIDA prefix and 21
// characters of an IAM user's unique id.
var DefaultIdentity = Identity{
	Account: ownerID,
	ARN:     "arn:aws:iam::" + ownerID + ":user/emulator",
	UserID:  "AIDAEMULATOR000000001",
}

// identity returns Options.Identity with defaults filled in.
func (s *Server) identity() Identity {
	id := s.o.Identity
	if id.Account == "" {
		id.Account = DefaultIdentity.Account
	}
	if id.ARN == "" {
		id.ARN = "arn:aws:iam::" + id.Account + ":user/emulator"
	}
	if id.UserID == "" {
		id.UserID = DefaultIdentity.UserID
	}
	return id
}

type getCallerIdentityResponse struct {
	XMLName   xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ GetCallerIdentityResponse"`
	Arn       string   `xml:"GetCallerIdentityResult>Arn"`
	UserID    string   `xml:"GetCallerIdentityResult>UserId"`
	Account   string   `xml:"GetCallerIdentityResult>Account"`
	RequestID string   `xml:"ResponseMetadata>RequestId"`
}

func (s *Server) getCallerIdentity(form url.Values, reqID string) ([]byte, *queryError) {
	for key := range form {
		if key != "Action" && key != "Version" {
			return nil, &queryError{http.StatusBadRequest, "InvalidParameterValue", "The parameter " + key + " is not recognized"}
		}
	}
	id := s.identity()
	if s.o.DenyGetCallerIdentity {
		// No IAM policy can deny GetCallerIdentity; a VPC endpoint policy
		// (or an SCP) with an explicit deny can.
		return nil, &queryError{http.StatusForbidden, "AccessDenied",
			"User: " + id.ARN + " is not authorized to perform: sts:GetCallerIdentity with an explicit deny in a VPC endpoint policy"}
	}
	return marshalXML(getCallerIdentityResponse{Arn: id.ARN, UserID: id.UserID, Account: id.Account, RequestID: reqID}), nil
}
