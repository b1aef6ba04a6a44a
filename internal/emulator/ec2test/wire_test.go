package ec2test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

// post sends one signed EC2 Query form and returns the status and body.
func post(t *testing.T, ep string, form url.Values) (int, string) {
	t.Helper()
	form.Set("Version", "2016-11-15")
	req, err := http.NewRequest(http.MethodPost, ep+"/", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=emulator/20240601/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=00")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestWire checks the raw XML of the EC2 side's answers, element by
// element, as EC2 sends them.
func TestWire(t *testing.T) {
	root, _ := twoDisks(t)
	clk := &clock{time.Date(2024, 6, 1, 10, 0, 0, 0, time.UTC)}
	_, ep := emulatortest.StartInstance(t, emulator.Options{Now: clk.now}, inst, emulatortest.RawVolume("/dev/xvda", root))
	vol := emulator.VolumeID(inst, "/dev/xvda")
	for _, tc := range []struct {
		form   url.Values
		status int
		want   []string
	}{
		{url.Values{"Action": {"DescribeInstances"}}, 200, []string{
			`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>`,
			`<reservationSet><item><reservationId>r-0`,
			`<ownerId>111122223333</ownerId><groupSet></groupSet><instancesSet><item><instanceId>` + inst + `</instanceId><imageId>ami-0abcdef1234567890</imageId>` +
				`<instanceState><code>16</code><name>running</name></instanceState><instanceType>t3.micro</instanceType><launchTime>2024-06-01T10:00:00.000Z</launchTime>` +
				`<placement><availabilityZone>us-east-1a</availabilityZone><tenancy>default</tenancy></placement>`,
			`<rootDeviceType>ebs</rootDeviceType><rootDeviceName>/dev/xvda</rootDeviceName><blockDeviceMapping><item><deviceName>/dev/xvda</deviceName>` +
				`<ebs><volumeId>` + vol + `</volumeId><status>attached</status><attachTime>2024-06-01T10:00:00.000Z</attachTime><deleteOnTermination>true</deleteOnTermination></ebs></item></blockDeviceMapping></item></instancesSet></item></reservationSet></DescribeInstancesResponse>`,
		}},
		{url.Values{"Action": {"DescribeVolumes"}, "VolumeId.1": {vol}}, 200, []string{
			`<volumeSet><item><volumeId>` + vol + `</volumeId><size>1</size><snapshotId></snapshotId><availabilityZone>us-east-1a</availabilityZone><status>in-use</status>` +
				`<createTime>2024-06-01T10:00:00.000Z</createTime><attachmentSet><item><volumeId>` + vol + `</volumeId><instanceId>` + inst + `</instanceId><device>/dev/xvda</device>` +
				`<status>attached</status><attachTime>2024-06-01T10:00:00.000Z</attachTime><deleteOnTermination>true</deleteOnTermination></item></attachmentSet>` +
				`<volumeType>gp3</volumeType><encrypted>false</encrypted><multiAttachEnabled>false</multiAttachEnabled></item></volumeSet></DescribeVolumesResponse>`,
		}},
		{url.Values{"Action": {"CreateSnapshots"}, "InstanceSpecification.InstanceId": {inst}, "Description": {"d"},
			"TagSpecification.1.ResourceType": {"snapshot"}, "TagSpecification.1.Tag.1.Key": {"case"}, "TagSpecification.1.Tag.1.Value": {"7"}}, 200, []string{
			`<CreateSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>`,
			`</snapshotId><volumeId>` + vol + `</volumeId><state>pending</state><volumeSize>1</volumeSize><startTime>2024-06-01T10:00:00.000Z</startTime><progress>0%</progress>` +
				`<ownerId>111122223333</ownerId><description>d</description><encrypted>false</encrypted><tagSet><item><key>case</key><value>7</value></item></tagSet></item></snapshotSet></CreateSnapshotsResponse>`,
		}},
		{url.Values{"Action": {"CreateTags"}, "ResourceId.1": {vol}, "Tag.1.Key": {"k"}, "Tag.1.Value": {"v"}}, 200, []string{
			`<CreateTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>`, `</requestId><return>true</return></CreateTagsResponse>`,
		}},
		{url.Values{"Action": {"CreateSnapshot"}, "VolumeId": {vol}, "Bogus": {"1"}}, 400, []string{
			`<Response><Errors><Error><Code>UnknownParameter</Code><Message>The parameter Bogus is not recognized</Message></Error></Errors><RequestID>`,
		}},
		{url.Values{"Action": {"CreateSnapshot"}}, 400, []string{
			`<Code>MissingParameter</Code><Message>The request must contain the parameter VolumeId</Message>`,
		}},
		{url.Values{"Action": {"LockSnapshot"}, "SnapshotId": {"snap-0123456789abcdef0"}, "LockMode": {"governance"}, "LockDuration": {"1"}}, 400, []string{
			`<Code>InvalidSnapshot.NotFound</Code><Message>The snapshot &#39;snap-0123456789abcdef0&#39; does not exist.</Message>`,
		}},
	} {
		code, body := post(t, ep, tc.form)
		for _, w := range tc.want {
			if code != tc.status || !strings.Contains(body, w) {
				t.Errorf("%s: %d\n%s\nwant %d and\n%s", tc.form.Get("Action"), code, body, tc.status, w)
				break
			}
		}
	}
}
