//! Tests of the DNS answers, on wire bytes, without sockets.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use drover_proto::api::{ServiceHealth, ServiceInstance};
use drover_types::network::ADDRESS_ATTRIBUTE;
use drover_types::{AllocId, JobId, Node, NodeId, NodeStatus, fixtures};

use super::Zone;
use crate::services::Catalogue;

fn instance(
    alloc: &str,
    node: &str,
    address: &str,
    port: u16,
    tags: &[&str],
    health: ServiceHealth,
) -> ServiceInstance {
    ServiceInstance {
        service: "Web".to_owned(),
        alloc_id: AllocId::new(alloc),
        job_id: JobId::new("shop"),
        group: "web".to_owned(),
        task: "server".to_owned(),
        node_id: NodeId::new(node),
        node_name: node.to_owned(),
        address: address.to_owned(),
        port: Some(port),
        tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
        meta: BTreeMap::new(),
        canary: false,
        health,
    }
}

fn node(name: &str, address: &str) -> Node {
    let mut node = fixtures::node(name);
    node.attributes.insert(ADDRESS_ATTRIBUTE.to_owned(), address.to_owned());
    node
}

/// Two healthy instances of `web` (one tagged `primary`), one critical,
/// on three nodes, one of them down.
fn zone() -> Zone {
    let catalogue = Catalogue::from_instances(
        vec![
            instance("a1", "n1", "192.0.2.1", 20001, &["primary", "v1"], ServiceHealth::Passing),
            instance("a2", "n2", "192.0.2.2", 20002, &["v1"], ServiceHealth::Passing),
            instance("a3", "n3", "192.0.2.3", 20003, &["v1"], ServiceHealth::Critical),
        ],
        42,
    );
    let mut down = node("gone", "192.0.2.9");
    down.status = NodeStatus::Down;
    let nodes = [node("n1", "192.0.2.1"), node("n2", "192.0.2.2"), node("n3", "192.0.2.3"), down];
    Zone::new(&catalogue, nodes.iter(), 5)
}

fn ask_with(zone: &Zone, name: &str, query_type: RecordType, edns: Option<u16>) -> Message {
    let mut query = Message::query();
    query.add_query(Query::query(Name::from_ascii(name).expect("valid name"), query_type));
    if let Some(payload) = edns {
        let mut options = Edns::new();
        options.set_max_payload(payload);
        query.set_edns(options);
    }
    let bytes = query.to_vec().expect("encodable query");
    let answer = zone.respond(&bytes, Some(4096)).expect("an answer");
    let response = Message::from_vec(&answer).expect("a decodable answer");
    assert_eq!(response.metadata.id, query.metadata.id);
    response
}

fn ask(zone: &Zone, name: &str, query_type: RecordType) -> Message {
    ask_with(zone, name, query_type, None)
}

fn addresses(response: &Message) -> Vec<IpAddr> {
    let mut addresses: Vec<IpAddr> = response
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect();
    addresses.sort();
    addresses
}

fn v4(text: &str) -> IpAddr {
    IpAddr::V4(text.parse::<Ipv4Addr>().expect("an address"))
}

#[test]
fn a_service_name_answers_the_addresses_of_its_healthy_instances() {
    let response = ask(&zone(), "web.service.drover.", RecordType::A);
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.metadata.authoritative);
    assert_eq!(addresses(&response), vec![v4("192.0.2.1"), v4("192.0.2.2")]);
    assert!(response.answers.iter().all(|record| record.ttl == 5));
}

#[test]
fn names_are_case_insensitive() {
    assert_eq!(addresses(&ask(&zone(), "WEB.Service.DROVER.", RecordType::A)).len(), 2);
}

#[test]
fn a_tag_narrows_the_answer() {
    let response = ask(&zone(), "primary.web.service.drover.", RecordType::A);
    assert_eq!(addresses(&response), vec![v4("192.0.2.1")]);
    let unknown_tag = ask(&zone(), "canary.web.service.drover.", RecordType::A);
    assert_eq!(unknown_tag.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn srv_answers_ports_and_node_targets_with_their_addresses() {
    let response = ask(&zone(), "_web._tcp.service.drover.", RecordType::SRV);
    let mut targets: Vec<(String, u16)> = response
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => Some((srv.target.to_string(), srv.port)),
            _ => None,
        })
        .collect();
    targets.sort();
    assert_eq!(targets, vec![("n1.node.drover.".to_owned(), 20001), ("n2.node.drover.".to_owned(), 20002)]);
    let mut glue: Vec<String> = response.additionals.iter().map(|record| record.name.to_string()).collect();
    glue.sort();
    assert_eq!(glue, vec!["n1.node.drover.".to_owned(), "n2.node.drover.".to_owned()]);

    let tagged = ask(&zone(), "_web._primary.service.drover.", RecordType::SRV);
    assert_eq!(tagged.answers.len(), 1);
    let plain = ask(&zone(), "primary.web.service.drover.", RecordType::SRV);
    assert_eq!(plain.answers.len(), 1);
}

#[test]
fn a_node_name_answers_its_address_unless_it_is_down() {
    assert_eq!(addresses(&ask(&zone(), "n3.node.drover.", RecordType::A)), vec![v4("192.0.2.3")]);
    assert_eq!(ask(&zone(), "gone.node.drover.", RecordType::A).metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn unknown_names_are_nxdomain_with_the_soa_and_other_zones_are_refused() {
    let unknown = ask(&zone(), "nothing.service.drover.", RecordType::A);
    assert_eq!(unknown.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(unknown.authorities.first().map(|record| record.record_type()), Some(RecordType::SOA));
    assert_eq!(ask(&zone(), "what.drover.", RecordType::A).metadata.response_code, ResponseCode::NXDomain);

    let elsewhere = ask(&zone(), "example.com.", RecordType::A);
    assert_eq!(elsewhere.metadata.response_code, ResponseCode::Refused);
    assert!(elsewhere.answers.is_empty());
}

#[test]
fn a_known_name_of_another_type_is_an_empty_answer() {
    let response = ask(&zone(), "web.service.drover.", RecordType::AAAA);
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.answers.is_empty());
    assert_eq!(response.authorities.len(), 1);
}

#[test]
fn a_service_whose_instances_all_fail_leaves_dns() {
    let catalogue =
        Catalogue::from_instances(vec![instance("a3", "n3", "192.0.2.3", 20003, &[], ServiceHealth::Critical)], 7);
    let zone = Zone::new(&catalogue, [node("n3", "192.0.2.3")].iter(), 0);
    assert_eq!(ask(&zone, "web.service.drover.", RecordType::A).metadata.response_code, ResponseCode::NXDomain);
}

/// A zone of one service `web` with `count` healthy instances.
fn zone_of_size(count: u16) -> Zone {
    let instances: Vec<ServiceInstance> = (0..count)
        .map(|index| {
            let address = format!("10.0.{}.{}", index / 250, index % 250 + 1);
            let node = format!("node{index:03}");
            instance(&format!("alloc{index}"), &node, &address, 20_000 + index, &[], ServiceHealth::Passing)
        })
        .collect();
    Zone::new(&Catalogue::from_instances(instances, 1), std::iter::empty(), 0)
}

#[test]
fn a_large_answer_over_udp_is_truncated_and_whole_over_tcp() {
    let zone = zone_of_size(200);
    let udp = ask(&zone, "web.service.drover.", RecordType::A);
    assert!(udp.metadata.truncation, "200 addresses do not fit in 512 bytes");
    assert!(udp.answers.is_empty());

    let mut query = Message::query();
    query.add_query(Query::query(Name::from_ascii("web.service.drover.").expect("valid"), RecordType::A));
    let tcp = zone.respond(&query.to_vec().expect("encodable"), None).expect("an answer");
    let tcp = Message::from_vec(&tcp).expect("decodable");
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 200);
}

#[test]
fn an_edns_client_gets_up_to_its_buffer_over_udp() {
    let zone = zone_of_size(100);
    assert!(ask(&zone, "web.service.drover.", RecordType::A).metadata.truncation, "over 512 bytes");
    let with_edns = ask_with(&zone, "web.service.drover.", RecordType::A, Some(4096));
    assert!(!with_edns.metadata.truncation, "100 A records fit in 4096 bytes");
    assert_eq!(with_edns.answers.len(), 100);
    assert!(with_edns.edns.is_some(), "an EDNS query gets an EDNS answer");
}

#[test]
fn garbage_gets_formerr_or_nothing() {
    let zone = zone();
    let answer = zone.respond(&[0x12, 0x34, 0xff], Some(512)).expect("an answer to a readable id");
    let response = Message::from_vec(&answer).expect("decodable");
    assert_eq!((response.metadata.id, response.metadata.response_code), (0x1234, ResponseCode::FormErr));
    assert_eq!(zone.respond(&[0x12], Some(512)), None);

    let mut notify = Message::query();
    notify.metadata.op_code = OpCode::Notify;
    let answer = zone.respond(&notify.to_vec().expect("encodable"), Some(512)).expect("an answer");
    assert_eq!(Message::from_vec(&answer).expect("decodable").metadata.response_code, ResponseCode::NotImp);
}

fn query_bytes(name: &str, query_type: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut query = Message::query();
    query.add_query(Query::query(Name::from_ascii(name).expect("valid name"), query_type));
    if let Some(payload) = edns {
        let mut options = Edns::new();
        options.set_max_payload(payload);
        query.set_edns(options);
    }
    query.to_vec().expect("encodable query")
}

#[test]
fn with_recursors_other_zones_are_forwarded_and_the_zone_is_still_answered() {
    use super::Reply;
    let zone = zone();
    let elsewhere = query_bytes("example.com.", RecordType::A, None);
    assert_eq!(zone.reply(&elsewhere, Some(4096), true), Reply::Forward(Some(512)), "a plain UDP client takes 512");
    let with_edns = query_bytes("example.com.", RecordType::A, Some(1232));
    assert_eq!(zone.reply(&with_edns, Some(4096), true), Reply::Forward(Some(1232)));
    assert_eq!(zone.reply(&elsewhere, None, true), Reply::Forward(None), "TCP takes any size");
    let Reply::Answer(refused) = zone.reply(&elsewhere, Some(4096), false) else {
        panic!("without recursors another zone is answered");
    };
    assert_eq!(Message::from_vec(&refused).expect("a message").metadata.response_code, ResponseCode::Refused);
    let inside = query_bytes("web.service.drover.", RecordType::A, None);
    let Reply::Answer(answer) = zone.reply(&inside, Some(4096), true) else {
        panic!("the zone is answered by drover itself");
    };
    assert_eq!(addresses(&Message::from_vec(&answer).expect("a message")).len(), 2);
}

#[test]
fn a_recursor_is_an_ip_address_with_port_53_unless_given() {
    use super::parse_recursor;
    assert_eq!(parse_recursor("192.0.2.53"), Ok("192.0.2.53:53".parse().unwrap()));
    assert_eq!(parse_recursor(" 192.0.2.53:5353 "), Ok("192.0.2.53:5353".parse().unwrap()));
    assert_eq!(parse_recursor("::1"), Ok("[::1]:53".parse().unwrap()));
    assert_eq!(parse_recursor("[2001:db8::53]:5353"), Ok("[2001:db8::53]:5353".parse().unwrap()));
    let error = parse_recursor("dns.example:53").expect_err("a host name is refused");
    assert!(error.contains("give an IP address"), "{error}");
}
