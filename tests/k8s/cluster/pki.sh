#!/usr/bin/env bash
# Certificates and kubeconfigs of the local cluster (openssl; kubeadm's layout and names) into
# build/k8s/pki. Made once per machine: reruns keep what exists, so kubeconfigs stay valid.
# Usage: tests/k8s/cluster/pki.sh
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../../.."
. tests/k8s/cluster/versions.env
. tests/k8s/cluster/lib.sh
P=$K/pki
mkdir -p "$P"
cd "$P"

ca() {  # ca NAME CN
    [ -f "$1.crt" ] && return 0
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.crt" -days 3650 -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
}

cert() {  # cert NAME CA SUBJECT EXTENDED_USAGE [SUBJECT_ALT_NAMES]
    [ -f "$1.crt" ] && return 0
    local ext="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=$4"
    [ -n "${5:-}" ] && ext+="\nsubjectAltName=$5"
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$3" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 3650 \
        -extfile <(printf "$ext") -out "$1.crt" 2>/dev/null
    rm -f "$1.csr"
}

kubeconfig() {  # kubeconfig NAME CERT   (client certificate CERT against the API server)
    [ -f "$1.kubeconfig" ] && return 0
    cat > "$1.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://$K8S_NODE_IP:$K8S_APISERVER_PORT
    certificate-authority-data: $(base64 -w0 ca.crt)
users:
- name: $1
  user:
    client-certificate-data: $(base64 -w0 "$2.crt")
    client-key-data: $(base64 -w0 "$2.key")
contexts:
- name: local
  context: {cluster: local, user: $1}
current-context: local
YAML
}

service_ip=${K8S_SERVICE_CIDR%.*/*}.1
ca ca kubernetes-ca
ca front-proxy-ca front-proxy-ca
cert apiserver ca "/CN=kube-apiserver" serverAuth \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$K8S_NODE_IP,IP:$service_ip"
cert apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
cert front-proxy-client front-proxy-ca "/CN=front-proxy-client" clientAuth
cert admin ca "/O=system:masters/CN=kubernetes-admin" clientAuth
cert kubelet ca "/O=system:nodes/CN=system:node:$K8S_NODE_NAME" clientAuth
# The kubelet's serving certificate (else it signs its own): metrics-server verifies it against the CA.
cert kubelet-serving ca "/O=system:nodes/CN=system:node:$K8S_NODE_NAME" serverAuth "DNS:$K8S_NODE_NAME,IP:$K8S_NODE_IP"
cert controller-manager ca "/CN=system:kube-controller-manager" clientAuth
cert scheduler ca "/CN=system:kube-scheduler" clientAuth
cert kube-proxy ca "/CN=system:kube-proxy" clientAuth
[ -f sa.key ] || { openssl genrsa -out sa.key 2048 2>/dev/null; openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null; }
for name in admin kubelet controller-manager scheduler kube-proxy; do kubeconfig "$name" "$name"; done
chmod 600 ./*.key ./*.kubeconfig
echo "==> certificates and kubeconfigs in $P"
