Subject: [#{{TICKET}}] Closed by the customer

Hello,

{{NAME}} closed ticket #{{TICKET}}, "{{SUBJECT}}".

  {{BASE_URL}}/tickets/{{TICKET}}

-- 
{{SITE_NAME}}
